import { StorageError } from '../../lib/errors.js';

/**
 * How many bytes a ByteSource read of (`offset`, `length`) returns on a source of `size` bytes: never past
 * the end, 0 at or after it. A negative, fractional or unsafe offset or length is a StorageError.
 */
export function readableLength(name: string, offset: number, length: number, size: number): number {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new StorageError('invalid', `invalid read of ${name}: offset ${offset}, length ${length}.`);
  }
  return Math.max(0, Math.min(length, size - offset));
}

/** The range a readStream() was asked for: each end a non-negative safe integer, the end not before the start. */
export function checkByteRange(start: number | undefined, end: number | undefined): void {
  for (const [name, v] of [
    ['start', start],
    ['end', end],
  ] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
      throw new StorageError('invalid', `${name} must be a non-negative integer (got ${v}).`);
  }
  if (start !== undefined && end !== undefined && end < start)
    throw new StorageError('invalid', `range end ${end} is before start ${start}.`);
}
