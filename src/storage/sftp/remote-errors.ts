import { StorageError } from '../../lib/errors.js';
import type { RunResult } from './connection.js';

/*
 * The table from what the host said to a StorageError a user can act on: a script's `@E <code> …` line
 * (scripts.ts), a tool's stderr, an SFTP status code.
 */

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
export const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

export type SftpError = Error & { code?: number | string };

/** Where a message points: `user@host:port` and the backup storage directory. */
export interface RemoteScope {
  where: string;
  root: string;
}

export const firstLine = (s: string): string => s.trim().split('\n')[0]!.slice(0, 300);

const userOf = (where: string): string => where.split('@')[0]!;

/** A failed SFTP request as a StorageError (a StorageError stays as it is). */
export function sftpError(err: unknown, { where }: RemoteScope, what: string, p: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = err as SftpError;
  if (e?.code === SFTP_NO_SUCH_FILE) return new StorageError('not-found', `${what}: ${p} does not exist on ${where}.`);
  if (e?.code === SFTP_PERMISSION_DENIED)
    return new StorageError('permission', `${what}: permission denied on ${p} on ${where}; give ${userOf(where)} read access to it.`);
  return new StorageError('io', `${what}: SFTP error on ${p} on ${where} (${e?.message ?? String(err)}).`);
}

/**
 * Turns a script's failure into a StorageError (does nothing on success). `what` says what zimage was
 * doing, `p` the path concerned, `need` the bytes an import asked for.
 */
export function checkRun(r: RunResult, { where, root }: RemoteScope, what: string, p: string, need = 0): void {
  if (!r.failure && r.code === 0) return;
  const user = userOf(where);
  const [code, ...rest] = r.failure ?? [];
  const detail = rest.join(' ') || r.stderr;
  const said = detail ? ` (${firstLine(detail)})` : '';
  switch (code) {
    case 'noroot':
      throw new StorageError(
        'unreachable',
        `backup storage directory ${root} does not exist on ${where}; create it (mkdir -p ${root}) or fix the backup storage url.`,
      );
    case 'noaccess':
      throw new StorageError(
        'permission',
        `backup storage directory ${root} on ${where} cannot be accessed (permission denied on it or a parent); fix the permissions for ${user}.`,
      );
    case 'notdir':
      throw new StorageError(
        'unreachable',
        `backup storage path ${root} on ${where} is not a directory; point the backup storage url at a directory.`,
      );
    case 'tools':
      throw new StorageError(
        'unsupported',
        `${where} lacks tools zimage needs on the host: ${rest.join(', ')}; install them (Debian/Ubuntu: apt-get install openssl coreutils sed) and reconnect.`,
      );
    case 'nospace':
      throw new StorageError('no-space', `backup storage directory ${root} on ${where} is full; free space or add capacity.`);
    case 'readonly':
      throw new StorageError(
        'permission',
        `backup storage directory ${root} on ${where} is on a read-only file system; mount it read-write.`,
      );
    case 'notwritable':
      throw new StorageError(
        'permission',
        `backup storage directory ${root} on ${where} is not writable by ${user}; give that user write access to it.`,
      );
    case 'needspace':
      throw new StorageError(
        'no-space',
        `backup storage directory ${root} on ${where} has ${rest[0] ?? 'too few'} bytes free but the image needs ${need}; free space or use another backup storage.`,
      );
    case 'notfound':
      throw new StorageError('not-found', `${what}: ${p} does not exist on ${where}.`);
    case 'notfile':
      throw new StorageError('invalid', `${what}: ${p} on ${where} is not a regular file.`);
    case 'noread':
      throw new StorageError('permission', `${what}: ${p} on ${where} is not readable by ${user}.`);
    case 'isdir':
      throw new StorageError('invalid', `install path ${p} is a directory, not an image file; nothing was deleted.`);
    case 'outside':
      throw new StorageError(
        'invalid',
        `install path ${p} is outside the backup storage directory ${root} on ${where} (symbolic links included); refusing to touch it.`,
      );
    case 'imagesoutside':
    case 'diroutside':
      throw new StorageError('invalid', `${p} on ${where} leads outside the backup storage directory ${root} (symbolic link); remove it.`);
    case 'mkdir':
    case 'io':
    case 'df':
    case 'invalid':
    case undefined:
    default: {
      if (/No space left|quota exceeded/i.test(detail)) {
        throw new StorageError('no-space', `${what}: no space left on the file system of ${root} on ${where}; free space or add capacity.`);
      }
      if (/Read-only file system/i.test(detail))
        throw new StorageError('permission', `${what}: ${p} on ${where} is on a read-only file system; mount it read-write.`);
      if (/Permission denied|Operation not permitted/i.test(detail)) {
        throw new StorageError('permission', `${what}: permission denied on ${p} on ${where}; give ${user} read/write access to it.`);
      }
      const status = r.code === null ? (r.signal ? ` (killed by SIG${r.signal})` : '') : ` (exit status ${r.code})`;
      throw new StorageError('io', `${what}: ${p} on ${where} failed${said || status}.`);
    }
  }
}
