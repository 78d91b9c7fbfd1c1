import { StorageError } from '../../lib/errors.js';

type Errno = NodeJS.ErrnoException;

/** The errno code of a failed fs call ('EIO' when it has none). */
export const codeOf = (err: unknown): string => (err as Errno)?.code ?? 'EIO';

/** A StorageError for a failed fs call: `what` says what zimage was doing, `p` the path concerned. */
export function fsError(err: unknown, what: string, p: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = codeOf(err);
  switch (code) {
    case 'ENOENT':
      return new StorageError('not-found', `${what}: ${p} does not exist.`);
    case 'EACCES':
    case 'EPERM':
      return new StorageError('permission', `${what}: permission denied on ${p}; give the zimage user read/write access to it.`);
    case 'EROFS':
      return new StorageError('permission', `${what}: ${p} is on a read-only file system; mount it read-write.`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError('no-space', `${what}: no space left on the file system of ${p} (${code}); free space or add capacity.`);
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ELOOP':
      return new StorageError('invalid', `${what}: ${p} is not what was expected (${code}).`);
    default:
      return new StorageError('io', `${what}: I/O error on ${p} (${code}).`);
  }
}
