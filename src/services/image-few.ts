import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { Db } from '../db/connect.js';
import { compare, type Condition } from './query.js';

/**
 * Conditions that name a set of images through another table — `backupStorageRefs.backupStorageUuid=X`,
 * `__systemTag__=T`, `__userTag__=T` — are EXISTS probes walked along the sort index: fast while the set is
 * a fair share of the library, but a storage just added or a rare tag makes the walk visit every image
 * (seconds at a million). So each such condition is first counted up to FEW_ROWS in its own index; a set
 * that small is read first instead (`image.uuid IN (…)`, then sorted), which both databases do in
 * milliseconds. The answers are the same rows either way.
 */
export const FEW_ROWS = 5000;

/** The set's members as `SELECT … AS uuid`, built on a query creator (the database, or an expression builder). */
type SetSource = (qc: { selectFrom: Db['selectFrom'] }) => ReturnType<Db['selectFrom']> & { limit(n: number): any };

function sourceOf(c: Condition): SetSource | undefined {
  if (c.op !== '=') return undefined;
  if (c.field === 'backupStorageRefs.backupStorageUuid') {
    return (qc) =>
      qc
        .selectFrom('image_backup_storage_ref as r')
        .select('r.image_uuid as uuid')
        .where((inner) => compare(inner, 'r.backup_storage_uuid', 'string', c)) as any;
  }
  if (c.field === '__systemTag__' || c.field === '__userTag__') {
    const type = c.field === '__systemTag__' ? 'System' : 'User';
    return (qc) =>
      qc
        .selectFrom('tag')
        .select('tag.resource_uuid as uuid')
        .where('tag.type', '=', type)
        .where((inner) => compare(inner, 'tag.tag', 'string', c)) as any;
  }
  return undefined;
}

/** The conditions of a query whose sets hold at most FEW_ROWS images (one small indexed count each). */
export async function fewSets(db: Db, conditions: readonly Condition[]): Promise<Set<Condition>> {
  const few = new Set<Condition>();
  for (const c of conditions) {
    const source = sourceOf(c);
    if (!source) continue;
    const members = source(db).limit(FEW_ROWS + 1);
    const { n } = await db
      .selectFrom(members.as('m'))
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    if (Number(n) <= FEW_ROWS) few.add(c);
  }
  return few;
}

/** `image.uuid IN (the set)`: the predicate of a condition fewSets chose. */
export function fewPredicate(eb: ExpressionBuilder<any, any>, c: Condition): Expression<SqlBool> {
  return eb('image.uuid', 'in', sourceOf(c)!(eb as unknown as { selectFrom: Db['selectFrom'] }) as any);
}
