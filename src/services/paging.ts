import type { SelectQueryBuilder } from 'kysely';

/** LIMIT/OFFSET that both SQLite (needs a LIMIT with OFFSET) and PostgreSQL (refuses a negative LIMIT) accept. */
export function page<DB, TB extends keyof DB, O>(
  q: SelectQueryBuilder<DB, TB, O>,
  limit?: number,
  start?: number,
): SelectQueryBuilder<DB, TB, O> {
  if (limit !== undefined) q = q.limit(limit);
  if (start !== undefined) q = (limit === undefined ? q.limit(Number.MAX_SAFE_INTEGER) : q).offset(start);
  return q;
}
