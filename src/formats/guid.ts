import { TruncatedError } from './errors.js';

/** GUID in Microsoft byte order (first three fields little-endian) → canonical upper-case text. */
export function guidToString(b: Uint8Array): string {
  if (b.length !== 16) throw new TruncatedError('GUID truncated');
  const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
  const part = (idx: number[]) => idx.map(h).join('');
  return [part([3, 2, 1, 0]), part([5, 4]), part([7, 6]), part([8, 9]), part([10, 11, 12, 13, 14, 15])].join('-').toUpperCase();
}
