import { PostgresAdapter, type SelectQueryBuilder } from 'kysely';
import type { Db } from '../db/connect.js';
import type { ApiJobTable, Database } from '../db/schema.js';

/*
 * The api_job rows as a cluster-wide queue of leased work. A job row is either waiting in the queue
 * (lease_until = 0, claimable by any node its affinity allows) or held by owner_node until lease_until, which
 * the owner renews with its heartbeat. `attempt` grows at each claim: every write a node makes for a job is
 * conditioned on (owner_node, attempt), so a node that lost the job (its lease ran out and another node took
 * it) cannot record anything for it any more.
 */

export const UNFINISHED = ['Queued', 'Running'] as const;

/** What a claim or a take-over scan returns of a row. */
export type JobRow = ApiJobTable;

export class JobLeases {
  /** PostgreSQL: row locks with SKIP LOCKED; SQLite runs one writer at a time, a transaction is enough. */
  readonly postgres: boolean;

  constructor(
    private readonly db: Db,
    readonly nodeId: string,
    public leaseMs: number,
  ) {
    this.postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  }

  private lock<O>(q: SelectQueryBuilder<Database, 'api_job', O>): SelectQueryBuilder<Database, 'api_job', O> {
    return this.postgres ? q.forUpdate().skipLocked() : q;
  }

  /**
   * Claims the oldest queued job this node may run: heavy ones only when `heavySlot` is true (a slot is free
   * here), light and 'shared' ones always. Atomic: two nodes never claim the same row.
   */
  async claim(heavySlot: boolean): Promise<JobRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      let q = trx
        .selectFrom('api_job')
        .selectAll()
        .where('state', '=', 'Queued')
        .where('lease_until', '=', 0)
        .where((eb) => eb.or([eb('affinity_node', 'is', null), eb('affinity_node', '=', this.nodeId)]));
      if (!heavySlot) q = q.where('heavy', '<>', 1);
      const row = await this.lock(q.orderBy('create_date').limit(1)).executeTakeFirst();
      if (!row) return undefined;
      const now = Date.now();
      const claimed = {
        owner_node: this.nodeId,
        lease_until: now + this.leaseMs,
        attempt: row.attempt + 1,
        state: row.heavy === 2 ? 'Queued' : 'Running',
        start_date: row.heavy === 2 ? null : now,
      };
      const res = await trx
        .updateTable('api_job')
        .set(claimed)
        .where('uuid', '=', row.uuid)
        .where('lease_until', '=', 0)
        .where('attempt', '=', row.attempt)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) === 1 ? { ...row, ...claimed } : undefined;
    });
  }

  /**
   * Renews the lease of every unfinished job this node holds; answers what the rows say now (attempt and
   * cancel flag per job), so the runner can stop jobs it lost and jobs cancelled through another node.
   */
  async renew(): Promise<Map<string, { attempt: number; cancel: boolean }>> {
    await this.db
      .updateTable('api_job')
      .set({ lease_until: Date.now() + this.leaseMs })
      .where('owner_node', '=', this.nodeId)
      .where('state', 'in', UNFINISHED)
      .where('lease_until', '>', 0)
      .execute();
    const rows = await this.db
      .selectFrom('api_job')
      .select(['uuid', 'attempt', 'cancel_requested'])
      .where('owner_node', '=', this.nodeId)
      .where('state', 'in', UNFINISHED)
      .where('lease_until', '>', 0)
      .execute();
    return new Map(rows.map((r) => [r.uuid, { attempt: r.attempt, cancel: r.cancel_requested === 1 }]));
  }

  /**
   * Jobs whose owner stopped renewing (dead node), locked for this transaction: `decide` says for each
   * whether it goes back to the queue (redo) or ends with the given state and body. Returns the rows ended.
   */
  async takeOver(decide: (row: JobRow) => { requeue: true } | { requeue: false; state: string; body: string }): Promise<JobRow[]> {
    return this.db.transaction().execute(async (trx) => {
      const now = Date.now();
      const rows = await this.lock(
        trx
          .selectFrom('api_job')
          .selectAll()
          .where('state', 'in', UNFINISHED)
          .where('lease_until', '>', 0)
          .where('lease_until', '<', now)
          .orderBy('create_date')
          .limit(50),
      ).execute();
      const ended: JobRow[] = [];
      for (const row of rows) {
        const d = decide(row);
        const q = trx.updateTable('api_job').where('uuid', '=', row.uuid).where('attempt', '=', row.attempt);
        if (d.requeue) {
          await q
            .set({ state: 'Queued', lease_until: 0, owner_node: '', previous_node: row.owner_node, start_date: null, bytes_done: 0 })
            .execute();
        } else {
          await q.set({ state: d.state, result: d.body, finish_date: now, previous_node: row.owner_node }).execute();
          ended.push({ ...row, state: d.state, result: d.body });
        }
      }
      return ended;
    });
  }

  /** Marks every unfinished job held by `owners` (dead for sure: this node's earlier life) as expired. */
  async expire(owners: 'all-but-me' | 'me'): Promise<void> {
    let q = this.db.updateTable('api_job').set({ lease_until: 1 }).where('state', 'in', UNFINISHED).where('lease_until', '>', 0);
    q = owners === 'me' ? q.where('owner_node', '=', this.nodeId) : q.where('owner_node', '<>', this.nodeId);
    await q.execute();
  }

  /**
   * Throws unless this node still holds the job at `attempt` with a live lease: called inside the
   * transaction that commits the job's work, so a node that lost the job cannot commit (PostgreSQL locks the
   * row until the commit, so no take-over can slip in between).
   */
  async fence(trx: Db, uuid: string, attempt: number): Promise<boolean> {
    const q = trx
      .selectFrom('api_job')
      .select('uuid')
      .where('uuid', '=', uuid)
      .where('owner_node', '=', this.nodeId)
      .where('attempt', '=', attempt)
      .where('lease_until', '>=', Date.now());
    const row = await (this.postgres ? q.forUpdate() : q).executeTakeFirst();
    return row !== undefined;
  }

  /** Records the end of a job this node holds; false when it lost the job meanwhile (nothing written). */
  async finish(uuid: string, attempt: number, set: Partial<ApiJobTable>): Promise<boolean> {
    const res = await this.db
      .updateTable('api_job')
      .set(set)
      .where('uuid', '=', uuid)
      .where('owner_node', '=', this.nodeId)
      .where('attempt', '=', attempt)
      .where('state', 'in', UNFINISHED)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Puts a job this node holds back in the queue (graceful stop): another node redoes it. */
  async release(uuid: string, attempt: number): Promise<boolean> {
    return this.finish(uuid, attempt, { state: 'Queued', lease_until: 0, owner_node: '', previous_node: this.nodeId, start_date: null });
  }

  /** Ends a job still waiting in the queue (cancel through any node); false when someone claimed it first. */
  async endQueued(uuid: string, set: Partial<ApiJobTable>): Promise<boolean> {
    const res = await this.db
      .updateTable('api_job')
      .set(set)
      .where('uuid', '=', uuid)
      .where('state', '=', 'Queued')
      .where('lease_until', '=', 0)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }
}
