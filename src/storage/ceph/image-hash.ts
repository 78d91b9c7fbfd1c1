import type { DigestAlgorithm, DigestResult } from '../../hashing/algorithms.js';
import { throwIfAborted } from '../../hashing/errors.js';
import { StorageError } from '../../lib/errors.js';
import type { HashOptions } from '../driver.js';
import { rbdCommandError, type CephErrorContext } from './errors.js';
import { startExportHash } from './export-hash.js';
import type { RbdRun, RbdRunner } from './rbd-process.js';

/** What hashing one RBD image needs from its driver. */
export interface ExportHashJob {
  rbd: RbdRunner;
  /** `pool/image` */
  spec: string;
  size: number;
  what: string;
  errCtx: CephErrorContext;
  /** Turns a worker-side failure into the driver's StorageError. */
  fail(err: unknown): StorageError;
}

/**
 * Hashes an RBD image as `rbd export - | openssl dgst` would: rbd writes into a Unix socket that a worker thread
 * reads and hashes (export-hash.ts). Cancel kills rbd; a short read is an io error, never a wrong digest.
 */
export async function hashByExport(
  job: ExportHashJob,
  algorithms: readonly DigestAlgorithm[],
  opts: HashOptions = {},
): Promise<DigestResult> {
  const { signal, onProgress } = opts;
  const sink = await startExportHash(algorithms);
  let run: RbdRun;
  try {
    run = job.rbd.run(['export', '--no-progress', job.spec, '-'], 'ignore', sink.writer);
  } finally {
    sink.closeWriter();
  }
  const kill = (): void => {
    if (run.proc.exitCode === null && run.proc.signalCode === null) run.proc.kill('SIGKILL');
  };
  signal?.addEventListener('abort', kill, { once: true });
  const ticker = onProgress ? setInterval(() => onProgress(sink.bytes(), job.size), 100) : undefined;
  try {
    const [exit, hashed] = await Promise.all([run.exit, sink.result.catch((err: Error) => err)]);
    throwIfAborted(signal);
    if (exit.code !== 0) throw rbdCommandError(exit.code, exit.signal, run.stderr(), job.errCtx);
    if (hashed instanceof Error) throw job.fail(hashed);
    onProgress?.(hashed.bytes, job.size);
    if (hashed.bytes !== job.size)
      throw new StorageError(
        'io',
        `${job.what}: read ${hashed.bytes} bytes but the image has ${job.size}; it changed or the read broke off.`,
      );
    return hashed.digests;
  } finally {
    if (ticker) clearInterval(ticker);
    signal?.removeEventListener('abort', kill);
    kill();
    await sink.dispose();
  }
}
