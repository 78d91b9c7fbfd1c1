import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { JobRunner } from '../jobs/runner.js';
import { UNFINISHED } from '../jobs/lease.js';

/** One node of the cluster as the node list shows it. */
export interface NodeView {
  id: string;
  address: string;
  version: string;
  state: 'Alive' | 'Dead';
  started: number;
  lastHeartbeat: number;
  /** Unfinished jobs this node holds (uuid and API). */
  runningJobs: Array<{ uuid: string; apiName: string; state: string }>;
  /** Whether it runs the cluster's periodic work (storage ping, expunger, job retention). */
  periodicWork: boolean;
  self: boolean;
}

/**
 * Node membership: each node upserts its row in `node` and heartbeats it every lease/5; a node whose
 * heartbeat is older than the lease is dead. Each heartbeat also drives the job side (lease renewal,
 * take-over of dead nodes' jobs, claims from the queue) and the periodic-work lease.
 */
export class NodeMembership {
  private timer?: NodeJS.Timeout;
  private beating?: Promise<void>;
  /** Called after each heartbeat (the periodic-work lease). */
  onBeat?: () => Promise<void>;
  /** The holder of the periodic-work lease, for the node list (set by PeriodicWork). */
  periodicHolder?: () => Promise<string | undefined>;

  constructor(
    private readonly db: Db,
    readonly nodeId: string,
    readonly leaseMs: number,
    private readonly jobs: JobRunner,
    private readonly log: Logger,
  ) {}

  /** Records this node (address as clients reach it, version) and starts the heartbeat. */
  async join(address: string, version: string): Promise<void> {
    const now = Date.now();
    const row = { id: this.nodeId, address, version, started: now, last_seen: now };
    await this.db
      .insertInto('node')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet({ address, version, started: now, last_seen: now }))
      .execute();
    this.timer = setInterval(() => void this.beat(), Math.max(200, Math.floor(this.leaseMs / 5)));
    this.timer.unref();
    await this.beat();
  }

  /** One heartbeat (never two at once). */
  beat(): Promise<void> {
    this.beating ??= (async () => {
      try {
        await this.db.updateTable('node').set({ last_seen: Date.now() }).where('id', '=', this.nodeId).execute();
        await this.jobs.tick();
        await this.onBeat?.();
      } catch (err) {
        this.log.warn({ err }, 'heartbeat failed');
      }
    })().finally(() => (this.beating = undefined));
    return this.beating;
  }

  /** Stops the heartbeat and removes this node's row (a clean stop is not a death). */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    await this.db
      .deleteFrom('node')
      .where('id', '=', this.nodeId)
      .execute()
      .catch((err) => this.log.warn({ err }, 'cannot remove this node from the node list'));
  }

  /** Every node with its state, last heartbeat and unfinished jobs; dead nodes are forgotten after an hour. */
  async list(): Promise<NodeView[]> {
    const now = Date.now();
    await this.db
      .deleteFrom('node')
      .where('last_seen', '<', now - Math.max(3_600_000, this.leaseMs * 10))
      .execute();
    const nodes = await this.db.selectFrom('node').selectAll().orderBy('started').execute();
    const jobs = await this.db
      .selectFrom('api_job')
      .select(['uuid', 'api_name', 'state', 'owner_node'])
      .where('state', 'in', UNFINISHED)
      .where('lease_until', '>', 0)
      .execute();
    const holder = await this.periodicHolder?.();
    return nodes.map((n) => ({
      id: n.id,
      address: n.address,
      version: n.version,
      state: now - n.last_seen <= this.leaseMs ? 'Alive' : 'Dead',
      started: n.started,
      lastHeartbeat: n.last_seen,
      runningJobs: jobs.filter((j) => j.owner_node === n.id).map((j) => ({ uuid: j.uuid, apiName: j.api_name, state: j.state })),
      periodicWork: holder === n.id,
      self: n.id === this.nodeId,
    }));
  }

  /** Whether `nodeId` has heartbeaten within the lease. */
  async alive(nodeId: string): Promise<boolean> {
    const row = await this.db.selectFrom('node').select('last_seen').where('id', '=', nodeId).executeTakeFirst();
    return row !== undefined && Date.now() - row.last_seen <= this.leaseMs;
  }
}
