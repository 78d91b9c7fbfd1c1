import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WORKER_SOURCE, type JobMessage, type WorkerReply } from './worker-source.js';

/** How long an idle worker is kept before it is terminated. */
const IDLE_TTL_MS = 60_000;

/** One persistent digest thread. Always unref()ed: it never keeps the process alive by itself. */
export class PoolWorker {
  /** Receives the replies of the job the worker is running. */
  onReply: ((reply: WorkerReply) => void) | undefined;
  /** Called once if the thread dies (uncaught error, exit) while a job holds it. */
  onDeath: ((err: Error) => void) | undefined;
  idleSince = 0;
  dead = false;

  constructor(readonly worker: Worker) {}

  post(msg: JobMessage): void {
    this.worker.postMessage(msg);
  }
}

/**
 * A lazily grown, persistent pool of digest threads shared by every job of the process. A job takes one
 * worker per algorithm and gives them back when they have replied, so a failed or aborted job leaves the
 * pool healthy. At most `maxWorkers` threads; beyond that acquire() answers undefined and the caller hashes
 * on its own thread instead of waiting (no deadlock, always progress).
 */
export class DigestWorkerPool {
  private readonly idle: PoolWorker[] = [];
  private readonly all = new Set<PoolWorker>();
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(readonly maxWorkers: number) {}

  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  acquire(n: number): PoolWorker[] | undefined {
    if (this.idle.length + (this.maxWorkers - this.all.size) < n) return undefined;
    const out: PoolWorker[] = [];
    while (out.length < n && this.idle.length > 0) out.push(this.idle.pop()!);
    try {
      while (out.length < n) out.push(this.spawn());
    } catch {
      for (const w of out) this.release(w);
      return undefined;
    }
    return out;
  }

  release(w: PoolWorker): void {
    w.onReply = undefined;
    w.onDeath = undefined;
    if (w.dead) return;
    w.idleSince = Date.now();
    this.idle.push(w);
    this.scheduleTrim();
  }

  /** Terminates every thread (idle or not). The pool stays usable: new threads are spawned on demand. */
  async shutdown(): Promise<void> {
    const workers = [...this.all];
    this.idle.length = 0;
    this.all.clear();
    if (this.trimTimer) clearInterval(this.trimTimer);
    this.trimTimer = undefined;
    await Promise.all(
      workers.map((w) => {
        w.dead = true;
        w.onDeath?.(new Error('digest worker pool shut down'));
        return w.worker.terminate();
      }),
    );
  }

  private spawn(): PoolWorker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    const pw = new PoolWorker(worker);
    this.all.add(pw);
    const die = (err: Error) => {
      if (pw.dead) return;
      pw.dead = true;
      this.all.delete(pw);
      const i = this.idle.indexOf(pw);
      if (i >= 0) this.idle.splice(i, 1);
      const onDeath = pw.onDeath;
      pw.onDeath = undefined;
      pw.onReply = undefined;
      onDeath?.(err);
    };
    worker.on('message', (m: WorkerReply) => pw.onReply?.(m));
    worker.on('error', (err) => die(err instanceof Error ? err : new Error(String(err))));
    worker.on('exit', (code) => die(new Error(`digest worker exited with code ${code}`)));
    worker.unref(); // after the listeners: adding a 'message' listener later would ref the port again
    return pw;
  }

  private scheduleTrim(): void {
    if (this.trimTimer !== undefined) return;
    this.trimTimer = setInterval(() => {
      const now = Date.now();
      for (let i = this.idle.length - 1; i >= 0; i--) {
        const w = this.idle[i]!;
        if (now - w.idleSince < IDLE_TTL_MS) continue;
        this.idle.splice(i, 1);
        this.all.delete(w);
        w.dead = true;
        void w.worker.terminate();
      }
      if (this.idle.length === 0 && this.trimTimer !== undefined) {
        clearInterval(this.trimTimer);
        this.trimTimer = undefined;
      }
    }, IDLE_TTL_MS / 2);
    this.trimTimer.unref();
  }
}

let sharedPool: DigestWorkerPool | undefined;

/** The process-wide pool, created on first use. */
export function digestPool(): DigestWorkerPool {
  sharedPool ??= new DigestWorkerPool(Math.max(8, 2 * availableParallelism()));
  return sharedPool;
}

/** Terminates the process-wide pool's threads (tests, graceful shutdown). Later jobs spawn new ones. */
export async function shutdownHashPool(): Promise<void> {
  await sharedPool?.shutdown();
}

/** Pool statistics, for tests and diagnostics. */
export function hashPoolStats(): { workers: number; idle: number; maxWorkers: number } {
  const p = digestPool();
  return { workers: p.size, idle: p.idleCount, maxWorkers: p.maxWorkers };
}

let keepAliveRefs = 0;
let keepAliveTimer: NodeJS.Timeout | undefined;

/**
 * Keeps the event loop alive while the caller awaits its (unref'd) workers; returns the release function.
 * Without it, `await hashFile(...)` as the last thing a script does could let the process exit mid-job.
 */
export function holdProcess(): () => void {
  if (keepAliveRefs++ === 0) keepAliveTimer = setInterval(() => {}, 1 << 30);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--keepAliveRefs === 0 && keepAliveTimer !== undefined) {
      clearInterval(keepAliveTimer);
      keepAliveTimer = undefined;
    }
  };
}
