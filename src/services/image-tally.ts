import { type Kysely, sql } from 'kysely';
import { isSqlite } from '../db/image-tally.js';
import type { Db } from '../db/connect.js';
import { compare, type Condition } from './query.js';

/**
 * Image counts per (state, status), kept by triggers on `image` (src/db/image-tally.ts) as signed deltas: each
 * insert, delete or state/status change appends rows (+1 / -1), so concurrent writers never wait on a shared
 * counter row. A total is the sum of a handful of rows; `compact` folds the deltas into one row per pair.
 */
export class ImageTally {
  /** Fold the deltas once a count has read more rows than this. */
  static readonly COMPACT_AFTER = 256;
  private compacting?: Promise<void>;

  constructor(private readonly db: Db) {}

  /** True when the tally answers `count` for these conditions exactly: only state= and status= (or none). */
  static answers(conditions: readonly Condition[]): boolean {
    return conditions.every((c) => c.op === '=' && (c.field === 'state' || c.field === 'status'));
  }

  /** The query behind a count: the same predicates as on `image`, on the tally's columns. */
  countQuery(conditions: readonly Condition[]) {
    return this.db
      .selectFrom('image_tally')
      .where((eb) => eb.and(conditions.map((c) => compare(eb, `image_tally.${c.field}`, 'string', c))))
      .select((eb) => [eb.fn.coalesce(eb.fn.sum<number>('n'), sql.lit(0)).as('n'), eb.fn.countAll<number>().as('rows')]);
  }

  async count(conditions: readonly Condition[]): Promise<number> {
    const row = await this.countQuery(conditions).executeTakeFirstOrThrow();
    if (Number(row.rows) > ImageTally.COMPACT_AFTER) await this.compact();
    return Number(row.n);
  }

  /** Replaces the deltas by one row per (state, status) with a non-zero sum. */
  compact(): Promise<void> {
    this.compacting ??= foldTally(this.db).finally(() => (this.compacting = undefined));
    return this.compacting;
  }
}

async function foldTally(db: Kysely<any>): Promise<void> {
  if (isSqlite(db)) {
    // One writer at a time: read the sums and replace the rows in one transaction.
    await db.transaction().execute(async (trx) => {
      const sums = await sql<{ state: string; status: string; n: number }>`
        SELECT state, status, SUM(n) AS n FROM image_tally GROUP BY state, status HAVING SUM(n) <> 0`.execute(trx);
      await sql`DELETE FROM image_tally`.execute(trx);
      if (sums.rows.length) await trx.insertInto('image_tally').values(sums.rows).execute();
    });
    return;
  }
  // One statement: rows other transactions add meanwhile are not in its snapshot, so they stay as they are.
  await sql`WITH gone AS (DELETE FROM image_tally RETURNING state, status, n)
    INSERT INTO image_tally (state, status, n)
    SELECT state, status, SUM(n) FROM gone GROUP BY state, status HAVING SUM(n) <> 0`.execute(db);
}
