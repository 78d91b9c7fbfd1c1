import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { ApiJobTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { setLongTimeout } from '../lib/timers.js';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import { JobCancelled, JobHandedBack, JobLeaseLost, JobTimeout, toZStackError } from './job-errors.js';
import { type EndContext, recordEnd } from './job-end.js';
import { JobLeases, type JobRow, UNFINISHED } from './lease.js';
import { type LiveJob, newLive, recordProgress } from './live-job.js';
import { abandonAll, stopLostJobs, takeOverDead } from './take-over.js';
import type { JobOutcome, JobSpec, Redoer, RunningJob, Sealer } from './types.js';
import { watchOutcome } from './watch.js';
import { Semaphore } from './semaphore.js';
import type { RefusedJobs } from './refused.js';
import { callWebHook, type WebHookOptions } from './webhook.js';

export type { JobOutcome, JobSpec, JobState, Redoer, RunningJob, Sealer } from './types.js';

/**
 * Runs API jobs. Every job is a row in api_job from the moment it is accepted to ZStack's retention
 * period after it ends, and always reaches a terminal state: success, failure, timeout (SYS.1001) or
 * cancel (SYS.1017). A running job holds a lease its node renews (src/jobs/lease.ts); when the node dies,
 * another node redoes the job from its stored request under the same id, or fails it naming the dead node.
 * Heavy jobs that can be redone wait in the database and are claimed by any node with a free slot.
 */
export class JobRunner {
  private readonly live = new Map<string, LiveJob>();
  /** Bodies of jobs accepted here, for when this node claims them itself (first attempt). */
  private readonly accepted = new Map<string, JobSpec & { deadline: number }>();
  private readonly heavy: Semaphore;
  readonly leases: JobLeases;
  /** Set by the API layer: how to redo a job from its stored request. */
  redoer?: Redoer;
  /** Whether a dead node's job is redone (PostgreSQL cluster) or failed (SQLite: one node, as before). */
  private readonly redoOnTakeOver: boolean;
  private pumping?: Promise<void>;
  private pumpAgain = false;
  private renewedAt = Date.now();
  private readonly ends: EndContext;

  constructor(
    private readonly db: Db,
    private readonly nodeId: string,
    maxHeavy: number,
    private readonly log: Logger,
    private readonly webHooks: WebHookOptions,
    private readonly refused: RefusedJobs,
    private readonly events: ServiceEvents = NO_EVENTS,
    private readonly sealer?: Sealer,
    leaseMs = 15_000,
  ) {
    this.heavy = new Semaphore(Math.max(1, maxHeavy));
    this.leases = new JobLeases(db, nodeId, leaseMs);
    this.redoOnTakeOver = this.leases.postgres;
    this.ends = { leases: this.leases, log, events, webHooks };
  }

  /** Whether `uuid` is taken: by a job row, or as the id of a refused call (which polling answers first). */
  async exists(uuid: string): Promise<boolean> {
    if (this.refused.derived(uuid)) return true;
    return (await this.db.selectFrom('api_job').select('uuid').where('uuid', '=', uuid).executeTakeFirst()) !== undefined;
  }

  /** Records the job and starts it (or queues it cluster-wide); `finished` settles with its outcome (never rejects). */
  async start(spec: JobSpec): Promise<{ finished: Promise<JobOutcome> }> {
    const now = Date.now();
    const request = spec.request && this.sealer ? this.sealer.seal(JSON.stringify(spec.request)) : null;
    // Heavy work that can be redone waits in the database for a node with a free slot (this one, if it has one).
    // So does any redoable job bound to another node (its local-directory storage is on that node's disk).
    const queued = request !== null && (spec.heavy === true || (spec.affinityNode !== undefined && spec.affinityNode !== this.nodeId));
    await this.db
      .insertInto('api_job')
      .values({
        uuid: spec.uuid,
        api_name: spec.apiName,
        state: queued || spec.heavy ? 'Queued' : 'Running',
        result: null,
        owner_node: queued ? '' : this.nodeId,
        resource_uuid: spec.resourceUuid ?? null,
        create_date: now,
        start_date: queued || spec.heavy ? null : now,
        finish_date: null,
        deadline: now + spec.timeoutMs,
        bytes_done: 0,
        bytes_total: 0,
        throughput: 0,
        web_hook: spec.webHook ?? null,
        cancel_requested: 0,
        lease_until: queued ? 0 : now + this.leases.leaseMs,
        attempt: queued ? 0 : 1,
        heavy: spec.heavy === true ? 1 : spec.heavy === 'shared' ? 2 : 0,
        request,
        affinity_node: spec.affinityNode ?? null,
        previous_node: null,
      })
      .execute();
    if (queued) {
      this.accepted.set(spec.uuid, { ...spec, deadline: now + spec.timeoutMs });
      await this.pump();
      const live = this.live.get(spec.uuid);
      return {
        finished: live ? live.finished : watchOutcome(this.db, spec.uuid, spec.watchMs ?? 0, (uuid) => this.live.get(uuid)?.finished),
      };
    }
    const live = newLive(spec.apiName, 1, spec.webHook ?? null, request !== null, spec.heavy ? 'Queued' : 'Running');
    live.finished = this.execute(spec, live, spec.heavy === true);
    return { finished: live.finished };
  }

  /** Claims queued jobs while this node has free heavy slots (and light or shared ones always). */
  async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      do {
        this.pumpAgain = false;
        for (;;) {
          const slot = this.heavy.tryAcquire();
          const row = await this.leases.claim(slot !== undefined).catch((err: unknown) => {
            this.log.warn({ err }, 'cannot claim queued jobs');
            return undefined;
          });
          if (!row) {
            slot?.();
            break;
          }
          if (row.heavy !== 1) slot?.();
          this.runClaimed(row, row.heavy === 1 ? slot : undefined);
        }
      } while (this.pumpAgain);
    })().finally(() => (this.pumping = undefined));
    return this.pumping;
  }

  /** Runs a job this node just claimed: its own body if it accepted the call, else rebuilt from the request. */
  private runClaimed(row: JobRow, slot: (() => void) | undefined): void {
    const mine = row.attempt === 1 ? this.accepted.get(row.uuid) : undefined;
    this.accepted.delete(row.uuid);
    const live = newLive(row.api_name, row.attempt, row.web_hook, row.request !== null, row.heavy === 2 ? 'Queued' : 'Running');
    let run: JobSpec['run'];
    try {
      if (mine) run = (job) => mine.run(job);
      else {
        if (!this.redoer || !this.sealer || row.request === null) throw new Error('no way to redo this job here');
        const request = JSON.parse(this.sealer.open(row.request)) as Record<string, unknown>;
        run = this.redoer(row.api_name, request, { uuid: row.uuid, attempt: row.attempt, previousNode: row.previous_node });
        this.log.warn({ job: row.uuid, api: row.api_name, previousNode: row.previous_node, attempt: row.attempt }, 'job taken over');
      }
    } catch (err) {
      run = () => Promise.reject(err instanceof ZStackError ? err : new ZStackError('SYS.1006', `cannot redo the job: ${String(err)}`));
    }
    const spec: JobSpec = {
      uuid: row.uuid,
      apiName: row.api_name,
      timeoutMs: Math.max(1, row.deadline - Date.now()),
      heavy: row.heavy === 1 ? true : row.heavy === 2 ? 'shared' : false,
      webHook: row.web_hook ?? undefined,
      resourceUuid: row.resource_uuid ?? undefined,
      run,
    };
    live.finished = this.execute(spec, live, false, slot);
  }

  private async execute(spec: JobSpec, live: LiveJob, waitForSlot: boolean, slot?: () => void): Promise<JobOutcome> {
    this.live.set(spec.uuid, live);
    const { controller } = live;
    const acceptedAt = Date.now();
    // Chained: a timeout beyond 2^31-1 ms must not overflow into an immediate abort.
    const timer = setLongTimeout(() => controller.abort(new JobTimeout()), spec.timeoutMs);
    let release = slot;
    let outcome: JobOutcome;
    try {
      if (waitForSlot) {
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
        progress: (done, total) => recordProgress(this.db, this.log, spec.uuid, live, done, total),
        fence: async (trx) => {
          if (!(await this.leases.fence(trx, spec.uuid, live.attempt))) {
            live.lost = true;
            throw new JobLeaseLost(`job ${spec.uuid} was taken over by another node; this node does not commit its work`);
          }
        },
      };
      const body = await spec.run(job);
      // A body that finished after its deadline still ended in time for the caller only if not aborted.
      if (controller.signal.aborted) throw controller.signal.reason;
      outcome = { ok: true, body };
    } catch (err) {
      outcome = { ok: false, error: toZStackError(spec, err, controller.signal, this.log) };
    } finally {
      timer.clear();
      release?.();
    }
    this.live.delete(spec.uuid);
    await recordEnd(this.ends, spec, live, outcome);
    if (release) void this.pump();
    return outcome;
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

  /** Requests cancellation through any node; false when the job is unknown or already finished. */
  async cancel(uuid: string): Promise<boolean> {
    const live = this.live.get(uuid);
    if (live) {
      live.controller.abort(new JobCancelled());
      return true;
    }
    const row = await this.db.selectFrom('api_job').select(['api_name', 'web_hook']).where('uuid', '=', uuid).executeTakeFirst();
    if (!row) return false;
    // Still waiting in the cluster queue: this node ends it (and calls its hook).
    const error = new ZStackError(
      'SYS.1017',
      `${row.api_name} job[uuid:${uuid}] was cancelled; the operation was stopped and nothing was changed`,
    );
    const body = { error: error.toBody() };
    if (await this.leases.endQueued(uuid, { state: 'Canceled', result: JSON.stringify(body), finish_date: Date.now() })) {
      this.accepted.delete(uuid);
      if (row.web_hook) void callWebHook(row.web_hook, uuid, false, body, this.log, this.webHooks);
      return true;
    }
    // Running on another node: it sees the flag at its next heartbeat.
    const res = await this.db
      .updateTable('api_job')
      .set({ cancel_requested: 1 })
      .where('uuid', '=', uuid)
      .where('state', 'in', UNFINISHED)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /**
   * One heartbeat of the job side: renews this node's leases, stops jobs it lost or that were cancelled
   * through another node, takes over the jobs of dead nodes, and claims queued work.
   */
  async tick(): Promise<void> {
    const t0 = Date.now();
    let held: Awaited<ReturnType<JobLeases['renew']>>;
    try {
      held = await this.leases.renew();
      this.renewedAt = t0;
    } catch (err) {
      // Cut off from the database longer than a lease: other nodes take these jobs over, so stop them here.
      if (t0 - this.renewedAt > this.leases.leaseMs) abandonAll(this.live);
      throw err;
    }
    stopLostJobs(this.live, held, t0);
    await this.takeOverDead();
    await this.pump();
    // Bodies of calls accepted here but claimed by other nodes are not needed once their deadline passed.
    for (const [uuid, spec] of this.accepted) if (spec.deadline < t0) this.accepted.delete(uuid);
  }

  /** Jobs whose node died: back to the queue to be redone, or failed with an error naming the node. */
  takeOverDead(): Promise<number> {
    return takeOverDead(this.leases, this.redoOnTakeOver, this.log, this.webHooks);
  }

  /**
   * At start-up, before serving: jobs this node id left unfinished in an earlier life (and on SQLite, where
   * only one process can run, every unfinished job) are dead work: taken over at once.
   */
  async recoverAtStart(): Promise<number> {
    await this.leases.expire('me');
    if (!this.leases.postgres) await this.leases.expire('all-but-me');
    return this.takeOverDead();
  }

  /** Removes finished jobs older than the retention period. */
  async purgeFinished(retentionSec: number): Promise<number> {
    const res = await this.db
      .deleteFrom('api_job')
      .where('finish_date', '<', Date.now() - retentionSec * 1000)
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Stops every live job and waits for them to end (shutdown): redoable ones go back to the queue, others are cancelled. */
  async stopAll(): Promise<void> {
    const all = [...this.live.values()];
    for (const j of all) j.controller.abort(this.redoOnTakeOver && j.redoable ? new JobHandedBack() : new JobCancelled());
    await Promise.allSettled(all.map((j) => j.finished));
  }
}
