import type { Logger } from 'pino';
import type { ServiceEvents } from '../observability/events.js';
import { JobCancelled, JobHandedBack } from './job-errors.js';
import type { JobLeases } from './lease.js';
import type { LiveJob } from './live-job.js';
import type { JobOutcome, JobSpec } from './types.js';
import { callWebHook, type WebHookOptions } from './webhook.js';

export interface EndContext {
  leases: JobLeases;
  log: Logger;
  events: ServiceEvents;
  webHooks: WebHookOptions;
}

/**
 * Records a job's end, conditioned on this node still holding it at its attempt, then logs it and calls its
 * web hook. A redoable job stopped by a shutdown goes back to the queue instead; a job lost to another node
 * records nothing here (the node that finishes it calls the hook).
 */
export async function recordEnd(ctx: EndContext, spec: JobSpec, live: LiveJob, outcome: JobOutcome): Promise<void> {
  const now = Date.now();
  const body = outcome.ok ? outcome.body : { error: outcome.error.toBody() };
  const reason: unknown = live.controller.signal.reason;
  live.state = outcome.ok ? 'Succeeded' : reason instanceof JobCancelled ? 'Canceled' : 'Failed';
  const elapsed = live.startedAt ? now - live.startedAt : 0;
  let recorded = false;
  try {
    if (reason instanceof JobHandedBack && !outcome.ok && live.redoable) {
      // Stopping: the job goes back to the queue for another node, not to the caller as a failure.
      if (await ctx.leases.release(spec.uuid, live.attempt)) return void ctx.log.info({ job: spec.uuid }, 'job handed back');
    }
    if (!live.lost) {
      recorded = await ctx.leases.finish(spec.uuid, live.attempt, {
        state: live.state,
        result: JSON.stringify(body),
        finish_date: now,
        bytes_done: live.bytesDone,
        bytes_total: live.bytesTotal,
        throughput: elapsed > 0 ? Math.round((live.bytesDone * 1000) / elapsed) : 0,
      });
    }
  } catch (err) {
    ctx.log.error({ err, job: spec.uuid }, 'cannot record the end of a job');
  }
  if (!recorded) {
    // Another node holds the job now: it records the end and calls the web hook.
    ctx.log.warn({ job: spec.uuid, api: spec.apiName }, 'job lost to another node; its end here is not recorded');
    return;
  }
  logEnd(ctx, spec, live, outcome, elapsed);
  if (live.webHook) {
    void callWebHook(live.webHook, spec.uuid, outcome.ok, body, ctx.log, ctx.webHooks);
  }
}

/** The job's end line (bytes, throughput, outcome), and its security event if the failure is one. */
function logEnd(ctx: EndContext, spec: JobSpec, live: LiveJob, outcome: JobOutcome, elapsedMs: number): void {
  const inventory = outcome.ok ? (outcome.body.inventory as { uuid?: unknown } | undefined) : undefined;
  const resource = spec.resourceUuid ?? (typeof inventory?.uuid === 'string' ? inventory.uuid : undefined);
  const line = {
    job: spec.uuid,
    api: spec.apiName,
    resource,
    outcome: live.state,
    durationMs: elapsedMs,
    bytes: live.bytesDone,
    bytesPerSec: elapsedMs > 0 ? Math.round((live.bytesDone * 1000) / elapsedMs) : 0,
    ...(outcome.ok ? {} : { code: outcome.error.code, details: outcome.error.details }),
  };
  if (outcome.ok) ctx.log.info(line, 'job finished');
  else ctx.log.warn(line, 'job failed');
  ctx.events.jobFinished(spec.apiName, outcome.ok ? 'Succeeded' : 'Failed', elapsedMs / 1000);
  const audit = outcome.ok ? undefined : outcome.error.audit;
  if (audit) {
    ctx.log.warn({ ...audit, job: spec.uuid, api: spec.apiName, resource }, 'security event');
    ctx.events.securityEvent(audit.event);
  }
}
