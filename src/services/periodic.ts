import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';

const LEASE = 'periodic';

/** A periodic task: its period in ms and what it does. */
export interface PeriodicTask {
  name: string;
  everyMs: number;
  run(): Promise<unknown>;
}

/**
 * Periodic work (storage ping, expunger, job retention) runs on one node of the cluster at a time: the
 * holder of the `periodic` row of cluster_lease, renewed at each heartbeat. When the holder dies, its lease
 * runs out and the next node to heartbeat takes the row and starts the tasks.
 */
export class PeriodicWork {
  private timers: NodeJS.Timeout[] = [];
  private holding = false;

  constructor(
    private readonly db: Db,
    private readonly nodeId: string,
    private readonly leaseMs: number,
    private readonly tasks: PeriodicTask[],
    private readonly log: Logger,
  ) {}

  get isHolder(): boolean {
    return this.holding;
  }

  /** Takes or renews the lease; starts or stops the tasks accordingly. */
  async beat(): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('cluster_lease')
      .values({ name: LEASE, holder: this.nodeId, lease_until: now + this.leaseMs })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const res = await this.db
      .updateTable('cluster_lease')
      .set({ holder: this.nodeId, lease_until: now + this.leaseMs })
      .where('name', '=', LEASE)
      .where((eb) => eb.or([eb('holder', '=', this.nodeId), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    const held = Number(res.numUpdatedRows) === 1;
    if (held && !this.holding) this.start();
    else if (!held && this.holding) this.stop();
  }

  /** The node holding the lease now, if any. */
  async holder(): Promise<string | undefined> {
    const row = await this.db.selectFrom('cluster_lease').select(['holder', 'lease_until']).where('name', '=', LEASE).executeTakeFirst();
    return row && row.lease_until >= Date.now() ? row.holder : undefined;
  }

  private start(): void {
    this.holding = true;
    this.log.info({ node: this.nodeId }, 'this node runs the periodic work');
    for (const task of this.tasks) {
      const t = setInterval(
        () => void task.run().catch((err) => this.log.warn({ err, task: task.name }, 'periodic task failed')),
        task.everyMs,
      );
      t.unref();
      this.timers.push(t);
    }
  }

  /** Stops the tasks here (lease lost, or shutdown) and gives the lease up at once on shutdown. */
  stop(release = false): void {
    if (this.holding) this.log.info({ node: this.nodeId }, 'this node no longer runs the periodic work');
    this.holding = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (release) {
      void this.db
        .updateTable('cluster_lease')
        .set({ lease_until: 0 })
        .where('name', '=', LEASE)
        .where('holder', '=', this.nodeId)
        .execute()
        .catch(() => undefined);
    }
  }
}
