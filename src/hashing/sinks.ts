import { createHash, type Hash } from 'node:crypto';
import { DIGEST_ALGORITHMS, opensslName, type DigestAlgorithm, type DigestResult } from './algorithms.js';
import { abortErrorFor } from './errors.js';
import { digestPool, holdProcess, type PoolWorker } from './pool.js';
import {
  CTRL_CONSUMED,
  CTRL_EPOCH,
  CTRL_LEN,
  CTRL_PRODUCED,
  CTRL_SEQ,
  CTRL_STATE,
  CTRL_WORDS,
  MAX_LANES,
  MAX_SLOTS,
  STATE_ABORT,
  STATE_DONE,
  type WorkerReply,
} from './worker-source.js';

/** Buffer and ring geometry. Mutable for benchmarks (setHashingTuning); defaults measured in bench/hashing.ts. */
export const tuning = {
  /** Bytes per read and per shared ring slot. */
  chunkSize: 4 << 20,
  /** Slots in a job's shared ring (so the reader may run slots - 1 chunks ahead of the slowest digest). */
  slots: 4,
  /** Inputs of at most this many bytes (when known) are hashed on the calling thread even with several algorithms. */
  localBelow: 1 << 20,
  /**
   * Read buffers and rings of all running jobs together aim at this many bytes: once many jobs run, each new
   * job's chunks shrink (never below MIN_CHUNK), so memory stays bounded (20 concurrent reads: not 20 × 8 MiB).
   */
  bufferBudget: 32 << 20,
};

const MIN_CHUNK = 256 << 10;
let jobsHoldingChunks = 0;

/**
 * The chunk size for a job about to hold `chunks` buffers of it (counting the running jobs that hold some),
 * and the release to call once it drops them (idempotent).
 */
export function reserveChunks(chunks: number): { size: number; release(): void } {
  jobsHoldingChunks++;
  const fair = Math.floor(tuning.bufferBudget / (chunks * jobsHoldingChunks) / 65536) * 65536;
  const size = Math.max(Math.min(MIN_CHUNK, tuning.chunkSize), Math.min(tuning.chunkSize, fair));
  let released = false;
  return {
    size,
    release: () => {
      if (released) return;
      released = true;
      jobsHoldingChunks--;
    },
  };
}

export function setHashingTuning(t: Partial<typeof tuning>): void {
  if (t.chunkSize !== undefined && (!Number.isInteger(t.chunkSize) || t.chunkSize < 4096 || t.chunkSize > 1 << 30)) {
    throw new RangeError('chunkSize must be an integer in [4096, 1 GiB]');
  }
  if (t.bufferBudget !== undefined && (!Number.isInteger(t.bufferBudget) || t.bufferBudget < 0)) {
    throw new RangeError('bufferBudget must be a non-negative integer');
  }
  if (t.slots !== undefined && (!Number.isInteger(t.slots) || t.slots < 2 || t.slots > MAX_SLOTS)) {
    throw new RangeError(`slots must be an integer in [2, ${MAX_SLOTS}]`);
  }
  Object.assign(tuning, t);
}

/** Checks and deduplicates an algorithm list (order of first appearance kept). */
export function normalizeAlgorithms(algorithms: readonly DigestAlgorithm[]): DigestAlgorithm[] {
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new TypeError('algorithms must be a non-empty array');
  }
  const out: DigestAlgorithm[] = [];
  for (const alg of algorithms) {
    if (!(DIGEST_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new TypeError(`unsupported digest algorithm: ${String(alg)}`);
    }
    if (!out.includes(alg)) out.push(alg);
  }
  if (out.length > MAX_LANES) throw new TypeError(`at most ${MAX_LANES} algorithms per job`);
  return out;
}

/** Where hashed bytes go: the calling thread, or one worker per algorithm. */
export interface DigestSink {
  /** Bytes accepted so far. */
  readonly bytes: number;
  /** Bytes every algorithm has finished hashing (<= bytes; lags by at most the shared ring). */
  readonly digested: number;
  /** Hashes (or copies for hashing) the chunk; the caller may reuse the chunk once this has settled. */
  write(chunk: Uint8Array): Promise<void> | void;
  finish(): Promise<DigestResult>;
  /** Idempotent; rejects pending and later calls with `err`; resources are released (possibly a bit later). */
  abort(err: Error): void;
}

/** Every algorithm on the calling thread: no thread hop, costs add. */
export class LocalSink implements DigestSink {
  bytes = 0;
  private hashes: [DigestAlgorithm, Hash][] | undefined;

  get digested(): number {
    return this.bytes;
  }
  private failure: Error | undefined;

  constructor(algorithms: readonly DigestAlgorithm[]) {
    this.hashes = algorithms.map((a) => [a, createHash(opensslName(a))]);
  }

  write(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (!this.hashes) throw new Error('digest already finished');
    for (const [, h] of this.hashes) h.update(chunk);
    this.bytes += chunk.byteLength;
  }

  finish(): Promise<DigestResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.hashes) return Promise.reject(new Error('digest already finished'));
    const out: DigestResult = {};
    for (const [a, h] of this.hashes) out[a] = h.digest('hex');
    this.hashes = undefined;
    return Promise.resolve(out);
  }

  abort(err: Error): void {
    this.failure ??= err;
    this.hashes = undefined;
  }
}

type WaitAsync = (
  ta: Int32Array,
  index: number,
  value: number,
  timeout?: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

/** Shared rings are reused across jobs (a few, each slots × chunkSize bytes). */
const freeRings: SharedArrayBuffer[] = [];
const MAX_FREE_RINGS = 2;

function takeRing(bytes: number): SharedArrayBuffer {
  const i = freeRings.findIndex((r) => r.byteLength === bytes);
  if (i >= 0) return freeRings.splice(i, 1)[0]!;
  return new SharedArrayBuffer(bytes);
}

function giveRing(ring: SharedArrayBuffer): void {
  if (freeRings.length < MAX_FREE_RINGS) freeRings.push(ring);
}

let nextJobId = 1;

/**
 * One worker per algorithm, all reading the same SharedArrayBuffer ring: one copy in (or none, when the
 * producer reads straight into a slot), every digest in parallel, the slowest one sets the pace.
 */
export class ParallelSink implements DigestSink {
  bytes = 0;
  readonly slotSize: number;
  readonly slots: number;
  private readonly ctrl: Int32Array;
  private readonly ring: SharedArrayBuffer;
  private readonly views: Uint8Array[] = [];
  private produced = 0;
  private fill = 0;
  /** Bytes up to the end of slot sequence q, at [q % (2 * slots)]: enough history for digested. */
  private readonly ends: number[];
  private published = 0;
  private failure: Error | undefined;
  private finished = false;
  private settled = false;
  private readonly results = new Map<DigestAlgorithm, string>();
  private outstanding: number;
  private ringReusable = true; // false once a thread died; the ring only goes back after a clean finish()
  private readonly allReplied: Promise<void>;
  private resolveAllReplied!: () => void;
  private readonly chunks: { release(): void };

  constructor(
    private readonly algorithms: readonly DigestAlgorithm[],
    private readonly workers: PoolWorker[],
  ) {
    this.slots = tuning.slots;
    const chunks = reserveChunks(this.slots);
    this.chunks = chunks;
    this.slotSize = chunks.size;
    this.ring = takeRing(this.slotSize * this.slots);
    for (let k = 0; k < this.slots; k++) this.views.push(new Uint8Array(this.ring, k * this.slotSize, this.slotSize));
    this.ends = new Array<number>(2 * this.slots).fill(0);
    this.ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
    this.outstanding = workers.length;
    this.allReplied = new Promise((r) => (this.resolveAllReplied = r));
    const id = nextJobId++;
    workers.forEach((w, lane) => {
      const alg = algorithms[lane]!;
      w.onReply = (reply) => this.onReply(w, alg, reply);
      w.onDeath = (err) => this.onDeath(w, alg, err);
      w.post({
        type: 'job',
        id,
        alg: opensslName(alg),
        ctrl: this.ctrl.buffer as SharedArrayBuffer,
        data: this.ring,
        slotSize: this.slotSize,
        slots: this.slots,
        lane,
      });
    });
  }

  /** The slot to fill next (full slot size), once every digest is done with its previous contents. */
  async acquireSlot(): Promise<Uint8Array> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new Error('digest already finished');
    await this.waitSlotFree();
    return this.views[this.produced % this.slots]!;
  }

  /** Hands the slot returned by acquireSlot(), holding `len` bytes, to every digest. */
  publish(len: number): void {
    if (this.failure) throw this.failure;
    if (len <= 0) return;
    if (len > this.slotSize) throw new RangeError('publish() beyond the slot');
    this.bytes += len;
    this.publishSlot(len);
  }

  get digested(): number {
    if (this.settled && this.finished && !this.failure) return this.published;
    const done = Math.max(this.minConsumed(), this.produced - this.slots); // slots below were waited for
    return done <= 0 ? 0 : this.ends[(done - 1) % this.ends.length]!;
  }

  private publishSlot(len: number): void {
    this.published += len;
    this.ends[this.produced % this.ends.length] = this.published;
    const k = this.produced % this.slots;
    Atomics.store(this.ctrl, CTRL_LEN + k, len);
    this.produced++;
    Atomics.store(this.ctrl, CTRL_PRODUCED, this.produced);
    this.kick();
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    const n = chunk.byteLength;
    while (off < n) {
      if (this.failure) throw this.failure;
      if (this.finished) throw new Error('digest already finished');
      if (this.fill === 0) await this.waitSlotFree();
      const slot = this.views[this.produced % this.slots]!;
      const take = Math.min(this.slotSize - this.fill, n - off);
      slot.set(off === 0 && take === n ? chunk : chunk.subarray(off, off + take), this.fill);
      this.fill += take;
      this.bytes += take;
      off += take;
      if (this.fill === this.slotSize) this.flushFill();
    }
  }

  async finish(): Promise<DigestResult> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new Error('digest already finished');
    if (this.fill > 0) this.flushFill();
    this.finished = true;
    Atomics.store(this.ctrl, CTRL_STATE, STATE_DONE);
    this.kick();
    const release = holdProcess();
    try {
      await this.allReplied;
    } finally {
      release();
    }
    // A thread may have failed while we waited (TS still narrows `failure` to undefined from before the await).
    const failure = this.failure as Error | undefined;
    if (failure) throw failure;
    const out: DigestResult = {};
    for (const a of this.algorithms) out[a] = this.results.get(a);
    return out;
  }

  abort(err: Error): void {
    if (this.settled) return;
    this.failure ??= err;
    if (Atomics.load(this.ctrl, CTRL_STATE) === STATE_ABORT) return;
    Atomics.store(this.ctrl, CTRL_STATE, STATE_ABORT);
    this.kick();
    this.wakeProducer();
  }

  private flushFill(): void {
    const len = this.fill;
    this.fill = 0;
    this.publishSlot(len);
  }

  private kick(): void {
    Atomics.add(this.ctrl, CTRL_SEQ, 1);
    Atomics.notify(this.ctrl, CTRL_SEQ);
  }

  private wakeProducer(): void {
    Atomics.add(this.ctrl, CTRL_EPOCH, 1);
    Atomics.notify(this.ctrl, CTRL_EPOCH);
  }

  private minConsumed(): number {
    let min = Infinity;
    for (let lane = 0; lane < this.workers.length; lane++) {
      const c = Atomics.load(this.ctrl, CTRL_CONSUMED + lane);
      if (c < min) min = c;
    }
    return min;
  }

  private async waitSlotFree(): Promise<void> {
    const need = this.produced - this.slots + 1;
    if (this.minConsumed() >= need) return;
    const release = holdProcess();
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        const epoch = Atomics.load(this.ctrl, CTRL_EPOCH);
        if (this.minConsumed() >= need) return;
        if (waitAsync) {
          const r = waitAsync(this.ctrl, CTRL_EPOCH, epoch, 1000);
          if (r.async) await r.value;
        } else {
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    } finally {
      release();
    }
  }

  private onReply(w: PoolWorker, alg: DigestAlgorithm, reply: WorkerReply): void {
    if (reply.type === 'result') this.results.set(alg, reply.hex);
    else if (reply.type === 'error') this.fail(new Error(`${alg} digest failed: ${reply.message}`));
    else if (reply.type === 'aborted') this.failure ??= abortErrorFor(undefined);
    digestPool().release(w);
    this.lanesDone();
  }

  private onDeath(_w: PoolWorker, alg: DigestAlgorithm, err: Error): void {
    this.ringReusable = false;
    this.fail(new Error(`${alg} digest worker died: ${err.message}`, { cause: err }));
    this.lanesDone();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (Atomics.load(this.ctrl, CTRL_STATE) !== STATE_ABORT) {
      Atomics.store(this.ctrl, CTRL_STATE, STATE_ABORT);
      this.kick();
    }
    this.wakeProducer();
  }

  private lanesDone(): void {
    if (--this.outstanding > 0) return;
    this.settled = true;
    this.chunks.release();
    // After an abort the producer may still have a read in flight into a slot: never reuse that ring.
    if (this.ringReusable && this.finished && !this.failure) giveRing(this.ring);
    this.resolveAllReplied();
    this.wakeProducer();
  }
}

/**
 * The sink for a job: the calling thread for one algorithm (or a small input of known size), the worker
 * pool otherwise; the calling thread as well when the pool is at its cap.
 */
export function createSink(algorithms: readonly DigestAlgorithm[], knownSize?: number): DigestSink {
  if (algorithms.length === 1 || (knownSize !== undefined && knownSize <= tuning.localBelow)) {
    return new LocalSink(algorithms);
  }
  const workers = digestPool().acquire(algorithms.length);
  if (!workers) return new LocalSink(algorithms);
  return new ParallelSink(algorithms, workers);
}
