import type { Db } from '../db/connect.js';
import type { ZStackError } from '../lib/errors.js';

/** Canceled is a failed job that ended by CancelLongJob (it polls as 503 SYS.1017, like any failure). */
export type JobState = 'Queued' | 'Running' | 'Succeeded' | 'Failed' | 'Canceled';

/** What a job body sees: its id, a signal that fires on cancel or timeout, and a progress reporter. */
export interface RunningJob {
  readonly uuid: string;
  readonly signal: AbortSignal;
  progress: (bytesDone: number, bytesTotal: number) => void;
  /**
   * Call inside the transaction that commits the job's work: throws when this node has lost the job to
   * another node (its lease ran out), so only the holder of the lease commits.
   */
  fence: (trx: Db) => Promise<void>;
}

/** Rebuilds a job's body from its stored request, on whichever node claims it (registered by the API layer). */
export type Redoer = (
  apiName: string,
  request: Record<string, unknown>,
  info: { uuid: string; attempt: number; previousNode: string | null },
) => (job: RunningJob) => Promise<Record<string, unknown>>;

/** Seals stored requests (they may hold credentials): the SecretBox every node shares. */
export interface Sealer {
  seal(plain: string): string;
  open(value: string): string;
}

export interface JobSpec {
  uuid: string;
  apiName: string;
  timeoutMs: number;
  /**
   * Heavy jobs (whole-image reads and writes) go through the concurrency limit. 'shared': the job joins work
   * shared with other jobs, which takes its slot with acquireHeavy(); the job stays Queued until the body
   * calls markRunning().
   */
  heavy: boolean | 'shared';
  webHook?: string;
  resourceUuid?: string;
  run(job: RunningJob): Promise<Record<string, unknown>>;
  /** The call, kept sealed with the job so another node can redo it (under the same id) if this one dies. */
  request?: Record<string, unknown>;
  /** Only this node may run the job (a local-directory storage lives on its disk). */
  affinityNode?: string;
  /** How long the caller watches `finished` of a job another node may run (the DB row is polled meanwhile). */
  watchMs?: number;
}

export type JobOutcome = { ok: true; body: Record<string, unknown> } | { ok: false; error: ZStackError };
