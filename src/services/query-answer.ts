import type { SelectQueryBuilder } from 'kysely';
import { page } from './paging.js';
import { parseQueryRequest, pickFields, type QueryRequest } from './query.js';

/** Query<X>/{uuid} is the query `uuid=<uuid>`; otherwise the query string is parsed. */
export function queryRequestOf(rawQuery: Record<string, string | string[]>, uuid?: string): QueryRequest {
  return uuid
    ? { conditions: [{ field: 'uuid', op: '=', value: uuid }], count: false, replyWithCount: false }
    : parseQueryRequest(rawQuery);
}

/**
 * Answers a ZStack query on `base` (its conditions applied): `{ total }` alone for count=true; else one page of
 * `rows()` (all columns, sorted) as inventories, cut to `fields=`, with `total` when replyWithCount asks for it.
 * `rows` is called only after the count, so a bad sort field does not fail a count.
 */
export async function answerQuery<DB, TB extends keyof DB, O, Row>(
  base: SelectQueryBuilder<DB, TB, O>,
  req: QueryRequest,
  rows: () => SelectQueryBuilder<DB, TB, Row>,
  inventory: (row: Row) => Record<string, unknown>,
  classOf: (inv: Record<string, unknown>) => string,
): Promise<Record<string, unknown>> {
  const counted =
    req.count || req.replyWithCount ? await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow() : undefined;
  // Kysely cannot resolve the selection's type while DB and TB are still generic.
  const total = counted === undefined ? undefined : Number((counted as unknown as { n: number | string }).n);
  if (req.count) return { total };
  const inventories = pickFields(
    (await page(rows(), req.limit, req.start).execute()).map((row) => inventory(row)),
    req.fields,
    classOf,
  );
  return { inventories, ...(total !== undefined ? { total } : {}) };
}
