import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { opensslName, type DigestAlgorithm, type DigestResult } from '../../hashing/algorithms.js';

/*
 * Hashing the output of `rbd export - ` at the speed of `rbd export - | openssl dgst`.
 *
 * A child's stdout piped into Node arrives as 'data' events on the main event loop (each with a Buffer, stream
 * bookkeeping and a hash update between the reads), competing with everything else the server does. Here
 * rbd writes into a Unix stream socket whose other end is read by one worker thread that hashes every chunk
 * right away: the same loop as `openssl dgst` reading its stdin, off the main thread. A socket, not a FIFO:
 * rbd's writes into a socket stall less than into a pipe (measured on 512 MiB: 1.28-1.33 s against 1.47 s
 * through a FIFO read with blocking reads, and a 1 MiB pipe buffer did not help).
 */

// One job per worker: it waits for { path, algs, progress }, so a worker can be started before it is needed.
const WORKER = String.raw`
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const { createHash } = require('node:crypto');
parentPort.once('message', ({ path, algs, progress }) => {
const hashes = algs.map((a) => createHash(a));
const done = new Float64Array(progress);
let n = 0;
const fail = (e) => parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
// One connection only (the writer's); the socket lives in a private 0700 directory.
const server = net.createServer((sock) => {
  // No one else may join: stop listening, and the main thread removes the socket's directory at once (close's
  // own callback would wait for this connection to end), so even a killed node leaves nothing behind.
  server.close();
  parentPort.postMessage({ type: 'accepted' });
  sock.on('data', (chunk) => {
    for (const h of hashes) h.update(chunk);
    n += chunk.length;
    done[0] = n;
  });
  sock.on('end', () => parentPort.postMessage({ type: 'result', n, hex: hashes.map((h) => h.digest('hex')) }));
  sock.on('error', fail);
});
server.on('error', fail);
server.listen(path, () => parentPort.postMessage({ type: 'open' }));
});
`;

/**
 * A worker thread takes about 30 ms to start, as long as the whole fixed cost of an `rbd export` of a small
 * image: each hash takes a started spare and starts the next one in the background. The spare is unref'd
 * (it never keeps the process alive; one idle worker costs about 10 MB) and is dropped if it dies while idle.
 */
let spare: Worker | undefined;
const newWorker = (): Worker => {
  const w = new Worker(WORKER, { eval: true, execArgv: [], resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
  w.unref();
  const drop = (): void => {
    if (spare === w) spare = undefined;
  };
  w.once('error', drop);
  w.once('exit', drop);
  return w;
};
function takeWorker(): Worker {
  // threadId is -1 once a worker has stopped, possibly before its 'exit' event has dropped it.
  const w = spare && spare.threadId !== -1 ? spare : newWorker();
  spare = undefined;
  w.ref();
  setImmediate(() => (spare ??= newWorker()));
  return w;
}

export interface ExportHashSink {
  /** The socket's path (in a private directory removed by dispose()). */
  path: string;
  /** The write end, for the producer's stdout (spawn's stdio); closed by closeWriter() once the producer has it. */
  writer: Socket;
  closeWriter(): void;
  /** Bytes hashed so far. */
  bytes(): number;
  /** Digests and the byte count once every copy of the write end is closed (EOF). */
  result: Promise<{ digests: DigestResult; bytes: number }>;
  /** Stops the worker and removes the socket; idempotent. */
  dispose(): Promise<void>;
}

/**
 * A Unix socket in a private temp directory with a hashing worker on its far end. Give `writer` to the producer
 * (spawn's stdio), then call closeWriter(): the worker sees EOF when the producer exits or is killed.
 */
export async function startExportHash(algorithms: readonly DigestAlgorithm[]): Promise<ExportHashSink> {
  const dir = mkdtempSync(join(tmpdir(), 'zimage-rbd-'));
  const path = join(dir, 'export.sock');
  let writer: Socket | undefined;
  let worker: Worker | undefined;
  const closeWriter = (): void => {
    writer?.destroy();
  };
  const dispose = async (): Promise<void> => {
    closeWriter();
    if (worker) await worker.terminate().catch(() => undefined);
    worker = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const progress = new SharedArrayBuffer(8);
    const done = new Float64Array(progress);
    const w = takeWorker();
    worker = w;
    let listening!: () => void;
    const isListening = new Promise<void>((resolve) => (listening = resolve));
    const result = new Promise<{ digests: DigestResult; bytes: number }>((resolve, reject) => {
      w.on('message', (m: { type: string; n?: number; hex?: string[]; message?: string }) => {
        if (m.type === 'open') listening();
        else if (m.type === 'accepted') rmSync(dir, { recursive: true, force: true });
        else if (m.type === 'result') resolve({ bytes: m.n!, digests: Object.fromEntries(algorithms.map((a, i) => [a, m.hex![i]!])) });
        else reject(new Error(`hashing worker: ${m.message}`));
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`hashing worker exited (${code})`)));
    });
    result.catch(() => undefined);
    w.postMessage({ path, algs: algorithms.map(opensslName), progress });
    await Promise.race([isListening, result]);
    const sock = connect(path);
    writer = sock;
    // Never read from (the worker writes nothing); an error only means the worker went away, which `result` says.
    sock.on('error', () => undefined);
    await Promise.race([new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject)), result]);
    return { path, writer: sock, closeWriter, bytes: () => done[0]!, result, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}
