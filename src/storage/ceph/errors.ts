import { StorageError } from '../../lib/errors.js';
import { authHint } from './helper.js';

/** What an error message needs to say where it happened and what to check. */
export interface CephErrorContext {
  /** What zimage was doing, e.g. "hashing ceph://rbd/abc". */
  what: string;
  pool: string;
  monitors: string[];
  user: string;
  timeoutSeconds: number;
  /** The image concerned, when there is one. */
  image?: string;
}

const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENOPKG: 65,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EDQUOT: 122,
} as const;
export { ERRNO };

/** A StorageError for an errno reported by librados/librbd (through the helper or the `rbd` command). */
export function cephError(errno: number, detail: string, c: CephErrorContext): StorageError {
  const mons = c.monitors.join(', ');
  const d = detail.trim().replace(/\s+/g, ' ');
  const why = d ? ` (${d})` : '';
  switch (errno) {
    case ERRNO.ETIMEDOUT:
    case ERRNO.ECONNREFUSED:
    case ERRNO.ESHUTDOWN:
      return new StorageError(
        'unreachable',
        `${c.what}: the Ceph cluster did not answer within ${c.timeoutSeconds} s${why}; check that the monitors [${mons}] are running and reachable from the zimage host, and that the cluster is healthy (OSDs up).`,
      );
    case ERRNO.EPERM:
    case ERRNO.EACCES:
      return new StorageError(
        'permission',
        `${c.what}: permission denied for client.${c.user}${why}; check the cephx user and key (cephUser/cephKey or the keyring) and give it access to pool "${c.pool}", e.g. ceph auth caps client.${c.user} mon 'profile rbd' osd 'profile rbd pool=${c.pool}'.`,
      );
    case ERRNO.ENOSPC:
    case ERRNO.EDQUOT:
      return new StorageError(
        'no-space',
        `${c.what}: Ceph pool "${c.pool}" is full${errno === ERRNO.EDQUOT ? ' (its quota is reached)' : ' (the cluster ran out of space)'}${why}; free space, raise the pool quota (ceph osd pool set-quota ${c.pool} max_bytes …) or add OSDs.`,
      );
    case ERRNO.ENOENT:
      return new StorageError(
        'not-found',
        c.image !== undefined
          ? `${c.what}: RBD image "${c.image}" does not exist in pool "${c.pool}"${why}.`
          : `${c.what}: not found${why}.`,
      );
    case ERRNO.EEXIST:
      return new StorageError('invalid', `${c.what}: RBD image "${c.image ?? '?'}" already exists in pool "${c.pool}"${why}.`);
    case ERRNO.EBUSY:
      return new StorageError(
        'io',
        `${c.what}: RBD image "${c.image ?? '?'}" is in use (it has watchers or snapshots)${why}; stop its users and retry.`,
      );
    case ERRNO.ENOPKG:
      return new StorageError(
        'unsupported',
        `${c.what}: ${d}; install the Debian package ceph-common (it brings python3-rados and python3-rbd).`,
      );
    default:
      return new StorageError('io', `${c.what}: Ceph error ${errno}${why}.`);
  }
}

/**
 * The error of a failed `rbd` run, from its exit status and stderr. rbd ends its messages with
 * "(<errno>) <strerror>"; the last one names the cause.
 */
export function rbdCommandError(code: number | null, signal: string | null, stderr: string, c: CephErrorContext): StorageError {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const matches = [...stderr.matchAll(/\((\d+)\) ([^\n]+)/g)];
  const last = matches[matches.length - 1];
  const rbdLine = [...lines].reverse().find((l) => l.startsWith('rbd:')) ?? lines[lines.length - 1] ?? '';
  const detail = rbdLine.replace(/^\d{4}-\d\d-\d\dT\S+\s+\S+\s+-?\d+\s+/, '').slice(0, 300);
  const auth = /handle_auth_bad_method[^\n]*i only support \[([\d,]*)\]/.exec(stderr);
  if (auth) return cephError(ERRNO.EACCES, authHint(auth[1] ?? '', stderr), c);
  if (last) return cephError(Number(last[1]), detail, c);
  if (/couldn't connect to the cluster/i.test(stderr)) return cephError(ERRNO.ETIMEDOUT, detail, c);
  if (signal) return new StorageError('io', `${c.what}: the rbd command was stopped by ${signal}.`);
  return new StorageError('io', `${c.what}: the rbd command failed (exit status ${code})${detail ? `: ${detail}` : ''}.`);
}
