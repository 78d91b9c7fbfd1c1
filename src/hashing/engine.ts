import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import type { DigestAlgorithm, DigestResult } from './algorithms.js';
import { abortErrorFor, ProgressThrottle, throwIfAborted } from './errors.js';
import { createSink, normalizeAlgorithms, ParallelSink, reserveChunks, type DigestSink } from './sinks.js';

export interface HashProgress {
  (bytesDone: number): void;
}

export interface HashRunOptions {
  /** Non-empty; duplicates are ignored. */
  algorithms: readonly DigestAlgorithm[];
  /** Aborting stops reading within one buffer and rejects with an Error whose name is 'AbortError'. */
  signal?: AbortSignal;
  /** Bytes hashed so far: at most every 100 ms, plus once at the end with the total. */
  onProgress?: HashProgress;
}

const noop = (): void => {};

function checkOffset(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${String(v)}`);
  }
}

/**
 * Hashes a whole local file, or the range [start, end) of it (end exclusive; a range past the end of the
 * file stops at the end of the file), with one read pass feeding every algorithm.
 *
 * One algorithm: reads of `tuning.chunkSize` (4 MiB; less when many jobs run: reserveChunks) into two reused
 * buffers, the next read in flight while the calling thread hashes the previous one. Several: reads go
 * straight into the slots of a shared ring that one worker per algorithm hashes in parallel (no copy at all).
 */
export async function hashFile(path: string, opts: HashRunOptions & { start?: number; end?: number }): Promise<DigestResult> {
  const algorithms = normalizeAlgorithms(opts.algorithms);
  const { signal } = opts;
  const start = opts.start ?? 0;
  checkOffset('start', opts.start);
  checkOffset('end', opts.end);
  if (opts.end !== undefined && opts.end < start) throw new RangeError('end must not be before start');
  const limit = opts.end ?? Infinity;
  throwIfAborted(signal);
  const progress = new ProgressThrottle(opts.onProgress);

  const fh = await open(path, 'r');
  let sink: DigestSink | undefined;
  let inflight: Promise<unknown> | undefined;
  let chunks: { release(): void } | undefined;
  const onAbort = (): void => sink?.abort(abortErrorFor(signal));
  try {
    const st = await fh.stat();
    const seekable = st.isFile() || st.isBlockDevice();
    if (!seekable && start > 0) throw new RangeError(`${path} is not seekable: start must be 0`);
    const knownSize = st.isFile() ? Math.max(0, Math.min(st.size, limit) - start) : undefined;
    throwIfAborted(signal);
    sink = createSink(algorithms, knownSize);
    signal?.addEventListener('abort', onAbort, { once: true });

    if (sink instanceof ParallelSink) {
      let pos = start;
      for (;;) {
        throwIfAborted(signal);
        const slot = await sink.acquireSlot();
        const want = Math.min(slot.byteLength, limit - pos);
        if (want <= 0) break;
        const read = fh.read(slot, 0, want, seekable ? pos : null);
        inflight = read;
        const { bytesRead } = await read;
        inflight = undefined;
        if (bytesRead === 0) break;
        throwIfAborted(signal);
        sink.publish(bytesRead);
        pos += bytesRead;
        progress.report(sink.digested);
      }
    } else {
      const local = sink;
      const reserved = reserveChunks(2);
      chunks = reserved;
      const size = knownSize === undefined ? reserved.size : Math.max(1, Math.min(reserved.size, knownSize));
      const bufs = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] as const;
      const readAt = (buf: Buffer, at: number): Promise<number> => {
        const want = Math.min(buf.byteLength, limit - at);
        if (want <= 0) return Promise.resolve(0);
        return fh.read(buf, 0, want, seekable ? at : null).then((r) => r.bytesRead);
      };
      let pos = start;
      let i = 0;
      let pending = readAt(bufs[0], pos);
      inflight = pending;
      for (;;) {
        const n = await pending;
        inflight = undefined;
        if (n === 0) break;
        throwIfAborted(signal);
        const buf = bufs[i as 0 | 1];
        pos += n;
        i ^= 1;
        pending = readAt(bufs[i as 0 | 1], pos); // overlaps the hashing below
        inflight = pending;
        await local.write(n === buf.byteLength ? buf : buf.subarray(0, n));
        progress.report(local.bytes);
      }
    }
    const result = await sink.finish();
    progress.done(sink.bytes);
    return result;
  } catch (err) {
    const e = signal?.aborted ? abortErrorFor(signal) : err;
    sink?.abort(e instanceof Error ? e : new Error(String(e)));
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (inflight) await inflight.catch(noop); // never close the descriptor under a pending read
    chunks?.release();
    await fh.close().catch(noop);
  }
}

function nextOrAbort<T>(it: AsyncIterator<T>, signal: AbortSignal | undefined): Promise<IteratorResult<T>> {
  const p = it.next();
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      p.catch(noop);
      reject(abortErrorFor(signal));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Stops a source we quit early. iterator.return() waits behind a pending next() (a stalled peer would make
 * it wait forever), so a Node stream is destroyed directly (without an error: no 'error' event to catch).
 */
function closeSource(stream: AsyncIterable<Uint8Array>, it: AsyncIterator<Uint8Array>): void {
  try {
    const destroy = (stream as { destroy?: unknown }).destroy;
    if (typeof destroy === 'function') {
      (destroy as () => void).call(stream);
    } else if (typeof it.return === 'function') {
      Promise.resolve(it.return()).catch(noop);
    }
  } catch {
    // the source's own cleanup failed: nothing to add to the job's outcome
  }
}

/**
 * Hashes any byte stream (HTTP body, SFTP stream, ceph export). An abort rejects at once, even while the
 * source is stalled, and closes the source (iterator.return()).
 */
export async function hashStream(stream: AsyncIterable<Uint8Array>, opts: HashRunOptions): Promise<DigestResult> {
  const algorithms = normalizeAlgorithms(opts.algorithms);
  const { signal } = opts;
  throwIfAborted(signal);
  const md = new MultiDigest(algorithms, { signal });
  const progress = new ProgressThrottle(opts.onProgress, 100, { current: () => md.bytesDigested, submitted: () => md.bytesHashed });
  const it = stream[Symbol.asyncIterator]();
  let exhausted = false;
  try {
    for (;;) {
      const r = await nextOrAbort(it, signal);
      if (r.done) {
        exhausted = true;
        break;
      }
      const v = r.value as Uint8Array | string;
      await md.update(typeof v === 'string' ? Buffer.from(v) : v);
      progress.report(md.bytesDigested);
    }
    const result = await md.digest();
    progress.done(md.bytesHashed);
    return result;
  } catch (err) {
    if (signal?.aborted) throw abortErrorFor(signal);
    throw err;
  } finally {
    progress.stop();
    md.destroy();
    if (!exhausted) closeSource(stream, it);
  }
}

const leakRegistry = new FinalizationRegistry<DigestSink>((sink) =>
  sink.abort(new Error('MultiDigest was garbage-collected without digest() or destroy()')),
);

/**
 * Incremental hashing: feed chunks with update() (await it: it applies back-pressure, and the chunk may be
 * reused once it resolves), then digest(). One algorithm hashes on the calling thread; several run on the
 * worker pool, fed through a shared ring (one copy per chunk). Always call digest() or destroy().
 */
export class MultiDigest {
  private readonly sink: DigestSink;
  private tail: Promise<void> = Promise.resolve();
  private result: Promise<DigestResult> | undefined;
  private destroyed = false;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(algorithms: readonly DigestAlgorithm[], opts?: { signal?: AbortSignal }) {
    const algs = normalizeAlgorithms(algorithms);
    const signal = opts?.signal;
    throwIfAborted(signal);
    const sink = createSink(algs);
    this.sink = sink;
    leakRegistry.register(this, sink, this);
    if (signal) {
      this.signal = signal;
      this.onAbort = () => sink.abort(abortErrorFor(signal));
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** Bytes accepted by update() so far. */
  get bytesHashed(): number {
    return this.sink.bytes;
  }

  /** Bytes every algorithm has finished with (lags bytesHashed by at most the shared ring, a few MiB). */
  get bytesDigested(): number {
    return this.sink.digested;
  }

  update(chunk: Uint8Array): Promise<void> {
    if (this.destroyed) return Promise.reject(new Error('MultiDigest destroyed'));
    if (this.result) return Promise.reject(new Error('MultiDigest.update() after digest()'));
    if (!(chunk instanceof Uint8Array)) return Promise.reject(new TypeError('chunk must be a Uint8Array'));
    const p = this.tail.then(() => this.sink.write(chunk));
    this.tail = p.then(noop, noop);
    return p;
  }

  digest(): Promise<DigestResult> {
    if (this.destroyed && !this.result) return Promise.reject(new Error('MultiDigest destroyed'));
    this.result ??= this.tail.then(() => this.sink.finish()).finally(() => this.detach());
    return this.result;
  }

  /** Releases workers and buffers; pending update()/digest() reject. Safe twice and after digest(). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.detach();
    this.sink.abort(new Error('MultiDigest destroyed'));
  }

  private detach(): void {
    leakRegistry.unregister(this);
    if (this.signal && this.onAbort) this.signal.removeEventListener('abort', this.onAbort);
  }
}

/** The Transform returned by createHashingTee(). */
export class HashingTee extends Transform {
  private readonly md: MultiDigest;
  private readonly progress: ProgressThrottle;
  private readonly result: Promise<DigestResult>;
  private resolveResult!: (r: DigestResult) => void;
  private rejectResult!: (e: Error) => void;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort: () => void;

  constructor(opts: HashRunOptions) {
    super();
    const algorithms = normalizeAlgorithms(opts.algorithms);
    this.signal = opts.signal;
    this.progress = new ProgressThrottle(opts.onProgress, 100, {
      current: () => this.md.bytesDigested,
      submitted: () => this.md.bytesHashed,
    });
    this.result = new Promise((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    this.result.catch(noop); // a caller that never asks for digests() gets no unhandled rejection
    this.md = new MultiDigest(algorithms);
    this.onAbort = () => this.destroy(abortErrorFor(this.signal));
    if (this.signal?.aborted) process.nextTick(this.onAbort);
    else this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get bytesHashed(): number {
    return this.md.bytesHashed;
  }

  /** The digests, once every byte went through; rejects if the tee is destroyed or fails first. */
  digests(): Promise<DigestResult> {
    return this.result;
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.push(buf); // downstream starts writing while the digests take their copy
    this.md.update(buf).then(() => {
      this.progress.report(this.md.bytesDigested);
      cb();
    }, cb);
  }

  override _flush(cb: TransformCallback): void {
    this.md.digest().then((r) => {
      this.progress.done(this.md.bytesHashed);
      this.resolveResult(r);
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.progress.stop();
    this.signal?.removeEventListener('abort', this.onAbort);
    this.md.destroy();
    this.rejectResult(err ?? new Error('hashing tee closed before the end of the stream'));
    cb(err);
  }
}

/**
 * A pass-through Transform for one-pass import: bytes flow through unchanged while every algorithm digests
 * them; back-pressure respected. digests() resolves after the last byte (the 'finish'/'end' of the tee).
 */
export function createHashingTee(opts: HashRunOptions): Transform & { digests(): Promise<DigestResult>; readonly bytesHashed: number } {
  return new HashingTee(opts);
}
