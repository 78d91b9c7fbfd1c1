import type { Logger } from 'pino';
import { isAbortError, StorageError, ZStackError } from '../lib/errors.js';
import type { JobRow } from './lease.js';
import type { JobSpec } from './types.js';

/** Why a job's signal fired. */
export class JobTimeout extends Error {
  override name = 'JobTimeout';
}
export class JobCancelled extends Error {
  override name = 'JobCancelled';
}
/** The node lost the job's lease (another node took it over) or is stopping and hands it back. */
export class JobLeaseLost extends Error {
  override name = 'JobLeaseLost';
}
export class JobHandedBack extends Error {
  override name = 'JobHandedBack';
}

/** The ZStack error a failed job answers. */
export function toZStackError(spec: JobSpec, err: unknown, signal: AbortSignal, log: Logger): ZStackError {
  const reason = signal.aborted ? signal.reason : undefined;
  if (reason instanceof JobTimeout) {
    return new ZStackError(
      'SYS.1001',
      `${spec.apiName} job[uuid:${spec.uuid}] timed out after ${spec.timeoutMs} ms; the operation was stopped and nothing was changed`,
    );
  }
  if (reason instanceof JobLeaseLost || reason instanceof JobHandedBack || err instanceof JobLeaseLost) {
    return new ZStackError('SYS.1006', `${spec.apiName} job[uuid:${spec.uuid}] was handed to another node`);
  }
  if (reason instanceof JobCancelled) {
    return new ZStackError(
      'SYS.1017',
      `${spec.apiName} job[uuid:${spec.uuid}] was cancelled; the operation was stopped and nothing was changed`,
    );
  }
  if (err instanceof ZStackError) return err;
  if (err instanceof StorageError) return new ZStackError('SYS.1006', err.message);
  if (isAbortError(err)) return new ZStackError('SYS.1017', `${spec.apiName} job[uuid:${spec.uuid}] was aborted`);
  log.error({ err, job: spec.uuid, api: spec.apiName }, 'job failed with an unexpected error');
  return new ZStackError('SYS.1000', `${spec.apiName} failed with an internal error: ${(err as Error)?.message ?? String(err)}`);
}

/** What becomes of a job whose node died: back to the queue (redo) or ended, naming the node. */
export function deadJobEnd(row: JobRow, cluster: boolean): { requeue: true } | { requeue: false; state: string; body: string } {
  const redo = cluster && row.request !== null && row.cancel_requested === 0 && row.deadline > Date.now();
  if (redo) return { requeue: true };
  const who = cluster ? `node ${row.owner_node}` : 'process';
  const error =
    row.cancel_requested === 1
      ? new ZStackError('SYS.1017', `${row.api_name} job[uuid:${row.uuid}] was cancelled; the zimage ${who} running it stopped`)
      : new ZStackError(
          'SYS.1006',
          `the zimage ${who} running this job stopped before the job finished; partial work was rolled back, please retry the call` +
            (cluster ? ` (${row.api_name} cannot be redone by another node from its request alone)` : ''),
        );
  return { requeue: false, state: row.cancel_requested === 1 ? 'Canceled' : 'Failed', body: JSON.stringify({ error: error.toBody() }) };
}
