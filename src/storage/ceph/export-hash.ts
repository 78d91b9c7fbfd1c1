import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { opensslName, type DigestAlgorithm, type DigestResult } from '../../hashing/algorithms.js';

/*
 * Hashing the output of `rbd export - ` at the speed of `rbd export - | openssl dgst`.
 *
 * A child's stdout piped into Node arrives as 64 KiB 'data' events on the main event loop (each with a
 * Buffer, stream bookkeeping and a hash update between the reads), competing with everything else the
 * server does. Here rbd writes into a FIFO instead, and one worker thread reads it with blocking reads and
 * hashes every chunk right away: the same loop as `openssl dgst` reading its stdin, off the main thread.
 */

const WORKER = String.raw`
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const { path, algs, bufSize, progress } = workerData;
try {
  const fd = fs.openSync(path, 'r'); // a writer is open already: does not block
  parentPort.postMessage({ type: 'open' });
  const buf = Buffer.allocUnsafe(bufSize);
  const hashes = algs.map((a) => createHash(a));
  const done = new Float64Array(progress);
  let n = 0;
  for (;;) {
    const r = fs.readSync(fd, buf, 0, bufSize, null);
    if (r === 0) break;
    const v = r === bufSize ? buf : buf.subarray(0, r);
    for (const h of hashes) h.update(v);
    n += r;
    done[0] = n;
  }
  fs.closeSync(fd);
  parentPort.postMessage({ type: 'result', n, hex: hashes.map((h) => h.digest('hex')) });
} catch (e) {
  parentPort.postMessage({ type: 'error', message: String(e && e.message || e) });
}
`;

/** Bytes per read from the FIFO (a pipe returns at most its capacity, 64 KiB by default, per read). */
const READ_BYTES = 1 << 20;

export interface FifoHash {
  /** The FIFO (in a private directory removed by dispose()). */
  path: string;
  /** The write end, for the producer's stdout; closed by closeWriter() once the producer has it. */
  writeFd: number;
  closeWriter(): void;
  /** Bytes hashed so far. */
  bytes(): number;
  /** Digests and the byte count once the producer closed its end (EOF). */
  result: Promise<{ digests: DigestResult; bytes: number }>;
  /** Stops the worker and removes the FIFO; idempotent. */
  dispose(): Promise<void>;
}

/**
 * A FIFO in a private temp directory with a hashing worker on its read end. Give `writeFd` to the producer
 * (spawn's stdio), then call closeWriter(): the worker sees EOF when the producer exits or is killed.
 */
export async function startFifoHash(algorithms: readonly DigestAlgorithm[]): Promise<FifoHash> {
  const dir = mkdtempSync(join(tmpdir(), 'zimage-rbd-'));
  const path = join(dir, 'export');
  let readFd = -1;
  let writeFd = -1;
  let worker: Worker | undefined;
  const dispose = async (): Promise<void> => {
    for (const fd of [readFd, writeFd]) if (fd >= 0) closeSync(fd);
    readFd = writeFd = -1;
    if (worker) await worker.terminate().catch(() => undefined);
    worker = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync('mkfifo', ['-m', '600', path]);
    // Opening a FIFO blocks until the other end is open, except a non-blocking read end; that one lets the
    // write end open at once, and the write end lets the worker's blocking read end open at once.
    readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    writeFd = openSync(path, constants.O_WRONLY);
    const progress = new SharedArrayBuffer(8);
    const done = new Float64Array(progress);
    const w = new Worker(WORKER, {
      eval: true,
      execArgv: [],
      workerData: { path, algs: algorithms.map(opensslName), bufSize: READ_BYTES, progress },
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker = w;
    let opened!: () => void;
    const isOpen = new Promise<void>((resolve) => (opened = resolve));
    const result = new Promise<{ digests: DigestResult; bytes: number }>((resolve, reject) => {
      w.on('message', (m: { type: string; n?: number; hex?: string[]; message?: string }) => {
        if (m.type === 'open') opened();
        else if (m.type === 'result') resolve({ bytes: m.n!, digests: Object.fromEntries(algorithms.map((a, i) => [a, m.hex![i]!])) });
        else reject(new Error(`hashing worker: ${m.message}`));
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`hashing worker exited (${code})`)));
    });
    result.catch(() => undefined);
    await Promise.race([isOpen, result]);
    closeSync(readFd);
    readFd = -1;
    return {
      path,
      writeFd,
      closeWriter: () => {
        if (writeFd >= 0) closeSync(writeFd);
        writeFd = -1;
      },
      bytes: () => done[0]!,
      result,
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
