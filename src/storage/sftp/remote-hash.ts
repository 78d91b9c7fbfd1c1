import { DIGEST_ALGORITHMS, opensslName, type DigestAlgorithm, type DigestResult } from '../../hashing/algorithms.js';
import { StorageError } from '../../lib/errors.js';
import type { HashOptions } from '../driver.js';
import { collect, type RunResult, type SshConnection } from './connection.js';
import { checkRun, firstLine, type RemoteScope } from './remote-errors.js';
import { HASH, KILL } from './scripts.js';

/*
 * The remote hash protocol: the HASH script runs `openssl dgst` on the host, next to the bytes, and reports
 * on stderr `@PID <pid>` (to kill it), `@S <size>` and `@P <bytes done>`; stdout has one digest line per
 * algorithm. Only the digests and progress lines cross the network.
 */

const HEX_LENGTH: Record<DigestAlgorithm, number> = { MD5: 32, SHA1: 40, SHA256: 64, SHA512: 128, SM3: 64 };

/** The distinct algorithms asked for; none, or one zimage does not know, is a StorageError('invalid'). */
export function hashAlgorithms(algorithms: readonly DigestAlgorithm[]): DigestAlgorithm[] {
  const algs = [...new Set(algorithms)];
  if (algs.length === 0) throw new StorageError('invalid', 'no digest algorithm was asked for.');
  for (const a of algs) {
    if (!(DIGEST_ALGORITHMS as readonly string[]).includes(a))
      throw new StorageError('invalid', `unsupported digest algorithm ${String(a)}.`);
  }
  return algs;
}

/**
 * Digests of the file `p` (confined to the root) on the host. On abort the remote job is killed (its shell
 * traps TERM, kills openssl and waits for it) and this returns only once the remote command has ended.
 */
export async function remoteHash(
  conn: SshConnection,
  scope: RemoteScope,
  file: { p: string; installPath: string },
  algs: readonly DigestAlgorithm[],
  opts: HashOptions,
): Promise<DigestResult> {
  const { p, installPath } = file;
  const { signal, onProgress } = opts;
  signal?.throwIfAborted();
  const ch = await conn.channel(HASH, [scope.root, p, ...algs.map(opensslName)], signal, true);
  let pid: number | undefined;
  let size = 0;
  let killing: Promise<unknown> | undefined;
  const kill = (): void => {
    if (killing || pid === undefined) return;
    killing = conn.run(KILL, [String(pid)], { timeoutMs: 10_000 }).catch(() => undefined);
  };
  const result = collect(ch, conn.where, {
    timeoutMs: 2 ** 31 - 1,
    onStderrLine: (line) => {
      const [tag, value] = line.split(' ');
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) return;
      if (tag === '@PID') {
        pid = n;
        if (signal?.aborted) kill();
      } else if (tag === '@S') {
        size = n;
        onProgress?.(0, size);
      } else if (tag === '@P') {
        onProgress?.(n, size);
      }
    },
  });
  let abortTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    kill();
    // The pid not known yet is killed when it arrives. If the kill cannot be delivered, closing the
    // channel makes the remote watcher (or the shell's next write) end the job.
    abortTimer = setTimeout(() => ch.close(), 5_000);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let r: RunResult;
  try {
    r = await result;
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (abortTimer) clearTimeout(abortTimer);
    await killing;
  }
  if (signal?.aborted) throw signal.reason;
  if (r.failure) checkRun(r, scope, 'hashing the image', installPath);
  if (r.code !== 0) {
    const unsupported = /unknown option or message digest|unsupported/i.test(r.stderr);
    if (unsupported) {
      throw new StorageError(
        'unsupported',
        `openssl on ${conn.where} cannot compute ${algs.join('/')}: ${firstLine(r.stderr)}; install a full OpenSSL 3.`,
      );
    }
    const detail = r.stderr ? `: ${firstLine(r.stderr)}` : r.signal ? ` (killed by SIG${r.signal})` : ` (exit status ${r.code})`;
    throw new StorageError('io', `hashing ${installPath} on ${conn.where} failed${detail}.`);
  }
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  const out: DigestResult = {};
  for (const [i, alg] of algs.entries()) {
    const hex = lines[i]?.trim().split(/\s+/)[0]?.toLowerCase();
    if (!hex || !/^[0-9a-f]+$/.test(hex) || hex.length !== HEX_LENGTH[alg]) {
      throw new StorageError(
        'io',
        `openssl on ${conn.where} gave no ${alg} digest for ${installPath} (got "${r.stdout.trim().slice(0, 200)}").`,
      );
    }
    out[alg] = hex;
  }
  onProgress?.(size, size);
  return out;
}
