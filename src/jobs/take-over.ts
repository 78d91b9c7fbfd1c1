import type { Logger } from 'pino';
import { deadJobEnd, JobCancelled, JobLeaseLost } from './job-errors.js';
import type { JobLeases } from './lease.js';
import type { LiveJob } from './live-job.js';
import { callWebHook, type WebHookOptions } from './webhook.js';

/**
 * After a lease renewal read `held` (what the rows say of this node's jobs at `readAt`): aborts the jobs
 * this node lost to another node and those cancelled through another node.
 */
export function stopLostJobs(live: Map<string, LiveJob>, held: Map<string, { attempt: number; cancel: boolean }>, readAt: number): void {
  for (const [uuid, job] of live) {
    if (job.since >= readAt) continue;
    const row = held.get(uuid);
    if (!row || row.attempt !== job.attempt) {
      job.lost = true;
      job.controller.abort(new JobLeaseLost(`lost the lease of job ${uuid}`));
    } else if (row.cancel) job.controller.abort(new JobCancelled());
  }
}

/** Cut off from the database longer than a lease: other nodes take these jobs over, so they stop here. */
export function abandonAll(live: Map<string, LiveJob>): void {
  for (const job of live.values()) {
    job.lost = true;
    job.controller.abort(new JobLeaseLost('cannot renew job leases'));
  }
}

/**
 * Jobs whose node died: back to the queue to be redone (`redo`: a PostgreSQL cluster and a stored request),
 * or failed with an error naming the dead node, whose web hook this node calls.
 */
export async function takeOverDead(leases: JobLeases, redo: boolean, log: Logger, webHooks: WebHookOptions): Promise<number> {
  const ended = await leases.takeOver((row) => deadJobEnd(row, redo));
  for (const row of ended) {
    log.warn({ job: row.uuid, api: row.api_name, node: row.previous_node ?? row.owner_node }, 'job of a dead node failed');
    if (row.web_hook) void callWebHook(row.web_hook, row.uuid, false, JSON.parse(row.result!) as Record<string, unknown>, log, webHooks);
  }
  return ended.length;
}
