import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { ApiJobTable } from '../db/schema.js';
import { isAbortError, StorageError, ZStackError } from '../lib/errors.js';
import { setLongTimeout } from '../lib/timers.js';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import { Semaphore } from './semaphore.js';
import type { RefusedJobs } from './refused.js';
import { callWebHook, type WebHookOptions } from './webhook.js';

/** Canceled is a failed job that ended by CancelLongJob (it polls as 503 SYS.1017, like any failure). */
export type JobState = 'Queued' | 'Running' | 'Succeeded' | 'Failed' | 'Canceled';

/** What a job body sees: its id, a signal that fires on cancel or timeout, and a progress reporter. */
export interface RunningJob {
  readonly uuid: string;
  readonly signal: AbortSignal;
  progress(bytesDone: number, bytesTotal: number): void;
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
}

export type JobOutcome = { ok: true; body: Record<string, unknown> } | { ok: false; error: ZStackError };

interface LiveJob {
  apiName: string;
  controller: AbortController;
  state: JobState;
  bytesDone: number;
  bytesTotal: number;
  startedAt?: number;
  lastFlush: number;
  finished: Promise<JobOutcome>;
}

class JobTimeout extends Error {
  override name = 'JobTimeout';
}
class JobCancelled extends Error {
  override name = 'JobCancelled';
}

/**
 * Runs API jobs. Every job is a row in api_job from the moment it is accepted to ZStack's retention
 * period after it ends, and always reaches a terminal state: success, failure, timeout (SYS.1001) or
 * cancel (SYS.1017). A job whose process died is failed at the next start-up.
 */
export class JobRunner {
  private readonly live = new Map<string, LiveJob>();
  private readonly heavy: Semaphore;

  constructor(
    private readonly db: Db,
    private readonly nodeId: string,
    maxHeavy: number,
    private readonly log: Logger,
    private readonly webHooks: WebHookOptions,
    private readonly refused: RefusedJobs,
    private readonly events: ServiceEvents = NO_EVENTS,
  ) {
    this.heavy = new Semaphore(Math.max(1, maxHeavy));
  }

  /** Whether `uuid` is taken: by a job row, or as the id of a refused call (which polling answers first). */
  async exists(uuid: string): Promise<boolean> {
    if (this.refused.derived(uuid)) return true;
    return (await this.db.selectFrom('api_job').select('uuid').where('uuid', '=', uuid).executeTakeFirst()) !== undefined;
  }

  /** Records the job and starts it; `finished` settles with its outcome (never rejects). */
  async start(spec: JobSpec): Promise<{ finished: Promise<JobOutcome> }> {
    const now = Date.now();
    await this.db
      .insertInto('api_job')
      .values({
        uuid: spec.uuid,
        api_name: spec.apiName,
        state: spec.heavy ? 'Queued' : 'Running',
        result: null,
        owner_node: this.nodeId,
        resource_uuid: spec.resourceUuid ?? null,
        create_date: now,
        start_date: spec.heavy ? null : now,
        finish_date: null,
        deadline: now + spec.timeoutMs,
        bytes_done: 0,
        bytes_total: 0,
        throughput: 0,
        web_hook: spec.webHook ?? null,
        cancel_requested: 0,
      })
      .execute();
    const controller = new AbortController();
    const live: LiveJob = {
      apiName: spec.apiName,
      controller,
      state: spec.heavy ? 'Queued' : 'Running',
      bytesDone: 0,
      bytesTotal: 0,
      lastFlush: 0,
      finished: Promise.resolve({ ok: true, body: {} }),
    };
    this.live.set(spec.uuid, live);
    live.finished = this.execute(spec, live);
    return { finished: live.finished };
  }

  private async execute(spec: JobSpec, live: LiveJob): Promise<JobOutcome> {
    const { controller } = live;
    const acceptedAt = Date.now();
    // Chained: a timeout beyond 2^31-1 ms must not overflow into an immediate abort.
    const timer = setLongTimeout(() => controller.abort(new JobTimeout()), spec.timeoutMs);
    let release: (() => void) | undefined;
    let outcome: JobOutcome;
    try {
      if (spec.heavy === true) {
        release = await this.heavy.acquire(controller.signal);
        live.state = 'Running';
        await this.db.updateTable('api_job').set({ state: 'Running', start_date: Date.now() }).where('uuid', '=', spec.uuid).execute();
      }
      live.startedAt = Date.now();
      this.log.info(
        { job: spec.uuid, api: spec.apiName, resource: spec.resourceUuid, queuedMs: live.startedAt - acceptedAt },
        'job started',
      );
      this.events.jobStarted(spec.apiName);
      const job: RunningJob = {
        uuid: spec.uuid,
        signal: controller.signal,
        progress: (done, total) => this.progress(spec.uuid, live, done, total),
      };
      const body = await spec.run(job);
      // A body that finished after its deadline still ended in time for the caller only if not aborted.
      if (controller.signal.aborted) throw controller.signal.reason;
      outcome = { ok: true, body };
    } catch (err) {
      outcome = { ok: false, error: this.toZStackError(spec, err, controller.signal) };
    } finally {
      timer.clear();
      release?.();
    }
    await this.finish(spec, live, outcome);
    return outcome;
  }

  private toZStackError(spec: JobSpec, err: unknown, signal: AbortSignal): ZStackError {
    const reason = signal.aborted ? signal.reason : undefined;
    if (reason instanceof JobTimeout) {
      return new ZStackError(
        'SYS.1001',
        `${spec.apiName} job[uuid:${spec.uuid}] timed out after ${spec.timeoutMs} ms; the operation was stopped and nothing was changed`,
      );
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
    this.log.error({ err, job: spec.uuid, api: spec.apiName }, 'job failed with an unexpected error');
    return new ZStackError('SYS.1000', `${spec.apiName} failed with an internal error: ${(err as Error)?.message ?? String(err)}`);
  }

  private async finish(spec: JobSpec, live: LiveJob, outcome: JobOutcome): Promise<void> {
    const now = Date.now();
    const body = outcome.ok ? outcome.body : { error: outcome.error.toBody() };
    live.state = outcome.ok ? 'Succeeded' : live.controller.signal.reason instanceof JobCancelled ? 'Canceled' : 'Failed';
    const elapsed = live.startedAt ? now - live.startedAt : 0;
    try {
      await this.db
        .updateTable('api_job')
        .set({
          state: live.state,
          result: JSON.stringify(body),
          finish_date: now,
          bytes_done: live.bytesDone,
          bytes_total: live.bytesTotal,
          throughput: elapsed > 0 ? Math.round((live.bytesDone * 1000) / elapsed) : 0,
        })
        .where('uuid', '=', spec.uuid)
        .execute();
    } catch (err) {
      this.log.error({ err, job: spec.uuid }, 'cannot record the end of a job');
    }
    this.live.delete(spec.uuid);
    this.logEnd(spec, live, outcome, elapsed);
    if (spec.webHook) {
      void callWebHook(spec.webHook, spec.uuid, outcome.ok, body, this.log, this.webHooks);
    }
  }

  /** The job's end line (bytes, throughput, outcome), and its security event if the failure is one. */
  private logEnd(spec: JobSpec, live: LiveJob, outcome: JobOutcome, elapsedMs: number): void {
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
    if (outcome.ok) this.log.info(line, 'job finished');
    else this.log.warn(line, 'job failed');
    this.events.jobFinished(spec.apiName, outcome.ok ? 'Succeeded' : 'Failed', elapsedMs / 1000);
    const audit = outcome.ok ? undefined : outcome.error.audit;
    if (audit) {
      this.log.warn({ ...audit, job: spec.uuid, api: spec.apiName, resource }, 'security event');
      this.events.securityEvent(audit.event);
    }
  }

  /** A heavy-job slot for work shared by 'shared' jobs (the work holds it, not any one job). */
  acquireHeavy(signal: AbortSignal): Promise<() => void> {
    return this.heavy.acquire(signal);
  }

  /** A 'shared' job whose work started: Running from now on. */
  markRunning(uuid: string): void {
    const live = this.live.get(uuid);
    if (!live || live.state !== 'Queued') return;
    live.state = 'Running';
    live.startedAt = Date.now();
    this.db
      .updateTable('api_job')
      .set({ state: 'Running', start_date: live.startedAt })
      .where('uuid', '=', uuid)
      .where('state', '=', 'Queued')
      .execute()
      .catch((err) => this.log.warn({ err, job: uuid }, 'cannot record that a job started'));
  }

  /** Unfinished jobs of this node, and the heavy-job slots: read when metrics are scraped. */
  stats(): { live: Array<{ api: string; state: string }>; heavyRunning: number; heavyQueued: number; heavyLimit: number } {
    const { running, queued, limit } = this.heavy.stats;
    return {
      live: [...this.live.values()].map((j) => ({ api: j.apiName, state: j.state })),
      heavyRunning: running,
      heavyQueued: queued,
      heavyLimit: limit,
    };
  }

  private progress(uuid: string, live: LiveJob, done: number, total: number): void {
    live.bytesDone = done;
    live.bytesTotal = total;
    const now = Date.now();
    if (now - live.lastFlush < 500 && done < total) return;
    live.lastFlush = now;
    const elapsed = live.startedAt ? now - live.startedAt : 0;
    this.db
      .updateTable('api_job')
      .set({ bytes_done: done, bytes_total: total, throughput: elapsed > 0 ? Math.round((done * 1000) / elapsed) : 0 })
      .where('uuid', '=', uuid)
      .where('state', 'in', ['Queued', 'Running'])
      .execute()
      .catch((err) => this.log.warn({ err, job: uuid }, 'cannot record job progress'));
  }

  /**
   * The id to answer a call refused for want of a valid session: nothing is stored or run, polling it
   * answers 503 ID.1001 (see RefusedJobs).
   */
  refuse(apiName: string, callerUuid?: string): string {
    return this.refused.issue(apiName, callerUuid);
  }

  /** The job row, with live progress for jobs running here (refused calls answer as failed jobs). */
  async get(uuid: string): Promise<ApiJobTable | undefined> {
    const derived = this.refused.derived(uuid);
    if (derived) return derived;
    const row = await this.db.selectFrom('api_job').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    if (!row) return this.refused.rememberedJob(uuid);
    const live = this.live.get(uuid);
    if (row && live && (row.state === 'Queued' || row.state === 'Running')) {
      row.state = live.state;
      row.bytes_done = live.bytesDone;
      row.bytes_total = live.bytesTotal;
    }
    return row;
  }

  /** Requests cancellation; false when the job is unknown or already finished. */
  async cancel(uuid: string): Promise<boolean> {
    const live = this.live.get(uuid);
    if (live) {
      live.controller.abort(new JobCancelled());
      return true;
    }
    // Running on another node: it sees the flag at its next progress check.
    const res = await this.db
      .updateTable('api_job')
      .set({ cancel_requested: 1 })
      .where('uuid', '=', uuid)
      .where('state', 'in', ['Queued', 'Running'])
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Fails the jobs this node left unfinished when it stopped: no job stays running forever. */
  async failInterrupted(): Promise<number> {
    const error = new ZStackError(
      'SYS.1006',
      'the zimage process running this job stopped before the job finished; partial work was rolled back, please retry the call',
    );
    const res = await this.db
      .updateTable('api_job')
      .set({ state: 'Failed', result: JSON.stringify({ error: error.toBody() }), finish_date: Date.now() })
      .where('owner_node', '=', this.nodeId)
      .where('state', 'in', ['Queued', 'Running'])
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /** Removes finished jobs older than the retention period. */
  async purgeFinished(retentionSec: number): Promise<number> {
    const res = await this.db
      .deleteFrom('api_job')
      .where('finish_date', '<', Date.now() - retentionSec * 1000)
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Cancels every live job and waits for them to end (shutdown). */
  async stopAll(): Promise<void> {
    const all = [...this.live.values()];
    for (const j of all) j.controller.abort(new JobCancelled());
    await Promise.allSettled(all.map((j) => j.finished));
  }
}
