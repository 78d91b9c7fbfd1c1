import type { Db } from '../db/connect.js';
import type { Logger } from 'pino';
import type { JobOutcome, JobState } from './types.js';

/** What this node keeps in memory of a job it runs. */
export interface LiveJob {
  apiName: string;
  attempt: number;
  webHook: string | null;
  /** When this node took the job (a heartbeat that read the rows before then does not judge it). */
  since: number;
  /** Its request is stored: another node can redo it. */
  redoable: boolean;
  /** Lost to another node: nothing more is recorded for it here. */
  lost?: boolean;
  controller: AbortController;
  state: JobState;
  bytesDone: number;
  bytesTotal: number;
  startedAt?: number;
  lastFlush: number;
  finished: Promise<JobOutcome>;
}

export function newLive(apiName: string, attempt: number, webHook: string | null, redoable: boolean, state: JobState = 'Queued'): LiveJob {
  return {
    apiName,
    since: Date.now(),
    redoable,
    attempt,
    webHook,
    controller: new AbortController(),
    state,
    bytesDone: 0,
    bytesTotal: 0,
    lastFlush: 0,
    finished: Promise.resolve({ ok: true, body: {} }),
  };
}

/** Records a job's progress in memory, and in its row at most every 500 ms (and at the end). */
export function recordProgress(db: Db, log: Logger, uuid: string, live: LiveJob, done: number, total: number): void {
  live.bytesDone = done;
  live.bytesTotal = total;
  const now = Date.now();
  if (now - live.lastFlush < 500 && done < total) return;
  live.lastFlush = now;
  const elapsed = live.startedAt ? now - live.startedAt : 0;
  db.updateTable('api_job')
    .set({ bytes_done: done, bytes_total: total, throughput: elapsed > 0 ? Math.round((done * 1000) / elapsed) : 0 })
    .where('uuid', '=', uuid)
    .where('state', 'in', ['Queued', 'Running'])
    .execute()
    .catch((err) => log.warn({ err, job: uuid }, 'cannot record job progress'));
}
