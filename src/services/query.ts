import { type ExpressionBuilder, type Expression, type SqlBool, sql } from 'kysely';
import type { Database } from '../db/schema.js';
import { Refusal, ZStackError } from '../lib/errors.js';
import { withClass } from '../lib/inventory-class.js';

/** ZStack's operators, in the order RestServer tests them: the first one the condition contains wins. */
export const QUERY_OPERATORS = ['!=', '>=', '<=', '!?=', '!~=', '~=', '?=', '=', '>', '<', 'is null', 'not null'] as const;
export type QueryOperator = (typeof QUERY_OPERATORS)[number];

export interface Condition {
  field: string;
  op: QueryOperator;
  value?: string;
}

export interface QueryRequest {
  conditions: Condition[];
  limit?: number;
  start?: number;
  count: boolean;
  replyWithCount: boolean;
  sort?: { field: string; direction: 'asc' | 'desc' };
  fields?: string[];
}

/** Splits one `q` condition at the first occurrence of the first operator it contains; the value is not trimmed. */
export function parseCondition(cond: string): Condition {
  for (const op of QUERY_OPERATORS) {
    const at = cond.indexOf(op);
    if (at < 0) continue;
    const field = cond.slice(0, at).trim();
    if (op === 'is null' || op === 'not null') return { field, op };
    return { field, op, value: cond.slice(at + op.length) };
  }
  throw new Refusal(
    'invalid',
    `Invalid query parameter. The '${cond}' in the parameter[q] doesn't contain any query operator. Valid query operators are [${QUERY_OPERATORS.join(', ')}]`,
  );
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v);

/** The largest limit/start: ZStack reads them as a Java int. */
export const MAX_PAGE_INT = 2 ** 31 - 1;

function intParam(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const text = v.trim(); // as ZStack does (Integer.valueOf of the trimmed value)
  const n = /^\+?\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= MAX_PAGE_INT)) {
    // ZStack's exact text (Integer.valueOf failing); negatives are refused too, as no database accepts them.
    throw new Refusal('invalid', `Invalid query parameter. '${name}' must be an integer`);
  }
  return n;
}

/** `record[key]` only when `key` is the record's own entry: never a prototype member such as `constructor`. */
export function ownEntry<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

export function parseQueryRequest(query: Record<string, string | string[]>): QueryRequest {
  const q = query.q === undefined ? [] : [query.q].flat();
  const sortRaw = one(query.sort);
  let sort: QueryRequest['sort'];
  if (sortRaw) {
    const direction = sortRaw.startsWith('-') ? 'desc' : 'asc';
    sort = { field: sortRaw.replace(/^[+-]/, '').trim(), direction };
  }
  const fieldsRaw = query.fields === undefined ? undefined : [query.fields].flat().join(',');
  return {
    conditions: q.map(parseCondition),
    limit: intParam('limit', one(query.limit)),
    start: intParam('start', one(query.start)),
    count: one(query.count) === 'true',
    replyWithCount: one(query.replyWithCount) === 'true',
    sort,
    fields: fieldsRaw
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

type FieldKind = 'string' | 'number' | 'boolean' | 'date';
export interface FieldSpec {
  column: string;
  kind: FieldKind;
}

/** How an inventory maps onto SQL: direct fields, nested lists reached through EXISTS sub-queries, tags. */
export interface QueryTarget<T extends keyof Database> {
  table: T;
  /** The inventory class named in ZStack's "no such field" error. */
  inventoryClass: string;
  fields: Record<string, FieldSpec>;
  /** `prefix.field` conditions, e.g. backupStorageRefs.backupStorageUuid. */
  nested: Record<
    string,
    (
      field: string,
      cmp: (column: string, kind: FieldKind) => Expression<SqlBool>,
      eb: ExpressionBuilder<any, any>,
    ) => Expression<SqlBool> | undefined
  >;
  /** List-of-values fields (e.g. attachedZoneUuids): true when an element matches. */
  lists?: Record<
    string,
    (cmp: (column: string, kind: FieldKind) => Expression<SqlBool>, eb: ExpressionBuilder<any, any>) => Expression<SqlBool>
  >;
}

function convert(field: string, kind: FieldKind, value: string): string | number {
  if (kind === 'string') return value;
  if (kind === 'boolean') {
    if (value === 'true') return 1;
    if (value === 'false') return 0;
    throw new ZStackError('SYS.1007', `condition value[${value}] of field[${field}] is not a valid boolean, use true or false`);
  }
  // Number columns hold integers (sizes, capacities) and dates epoch milliseconds: anything else would be a
  // database error (PostgreSQL refuses 1.5 or 1e20 for a bigint), so it is the caller's error here.
  const n = kind === 'date' && !/^-?\d+$/.test(value.trim()) ? Date.parse(value) : /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ZStackError(
      'SYS.1007',
      `condition value[${value}] of field[${field}] is not a valid ${kind === 'date' ? 'date' : 'integer'}`,
    );
  }
  return n;
}

/** Builds the SQL predicate of one condition on a column, with bound parameters only. */
export function compare(eb: ExpressionBuilder<any, any>, column: string, kind: FieldKind, c: Condition): Expression<SqlBool> {
  const ref = eb.ref(column);
  const v = c.value ?? '';
  if (v.includes('\0')) throw new ZStackError('SYS.1007', `condition value of field[${c.field}] contains a NUL character`);
  if ((c.op === '~=' || c.op === '!~=') && kind !== 'string') {
    throw new ZStackError(
      'SYS.1007',
      `operator ${c.op} of field[${c.field}] applies to text fields only; use =, !=, >, <, >=, <=, ?= or !?=`,
    );
  }
  switch (c.op) {
    case 'is null':
      return eb(ref, 'is', null);
    case 'not null':
      return eb(ref, 'is not', null);
    case '?=':
      return eb(
        ref,
        'in',
        v.split(',').map((x) => convert(c.field, kind, x)),
      );
    case '!?=':
      return eb(
        ref,
        'not in',
        v.split(',').map((x) => convert(c.field, kind, x)),
      );
    case '~=':
      return eb(ref, 'like', v);
    case '!~=':
      return eb(ref, 'not like', v);
    default:
      return eb(ref, c.op, convert(c.field, kind, v));
  }
}

/** The WHERE predicates of a query on `target` (all AND-ed). Unknown fields answer SYS.1007. */
export function conditionsFor<T extends keyof Database>(
  target: QueryTarget<T>,
  conditions: readonly Condition[],
  eb: ExpressionBuilder<any, any>,
): Expression<SqlBool>[] {
  return conditions.map((c) => {
    const direct = ownEntry(target.fields, c.field);
    if (direct) return compare(eb, `${target.table}.${direct.column}`, direct.kind, c);
    if (c.field === '__systemTag__' || c.field === '__userTag__') {
      const type = c.field === '__systemTag__' ? 'System' : 'User';
      return eb.exists(
        eb
          .selectFrom('tag')
          .select(sql.lit(1).as('one'))
          .whereRef('tag.resource_uuid', '=', `${target.table}.uuid` as any)
          .where('tag.type', '=', type)
          .where((inner) => compare(inner, 'tag.tag', 'string', c)),
      );
    }
    const list = target.lists ? ownEntry(target.lists, c.field) : undefined;
    if (list) return list((column, kind) => compare(eb, column, kind, c), eb);
    const dot = c.field.indexOf('.');
    if (dot > 0) {
      const build = ownEntry(target.nested, c.field.slice(0, dot));
      const sub = build?.(c.field.slice(dot + 1), (column, kind) => compare(eb, column, kind, c), eb);
      if (sub) return sub;
    }
    throw new ZStackError('SYS.1007', `condition name[${c.field}] is invalid, no such field on inventory class[${target.inventoryClass}]`);
  });
}

export function sortColumn<T extends keyof Database>(target: QueryTarget<T>, field: string): string {
  const spec = ownEntry(target.fields, field);
  if (!spec)
    throw new ZStackError('SYS.1007', `sort field[${field}] is invalid, no such field on inventory class[${target.inventoryClass}]`);
  return `${target.table}.${spec.column}`;
}

/** Keeps only the requested fields of each inventory (ZStack's `fields=`). */
/**
 * A `fields=` projection: each inventory keeps only the named fields and is an instance of `classOf(inv)`,
 * the queried inventory class (ZStack's ZQL builds an empty instance of it and sets the fields).
 */
export function pickFields(
  inventories: Record<string, unknown>[],
  fields: string[] | undefined,
  classOf: (inv: Record<string, unknown>) => string,
): Record<string, unknown>[] {
  if (!fields?.length) return inventories;
  return inventories.map((inv) =>
    withClass(classOf(inv), Object.fromEntries(fields.filter((f) => Object.hasOwn(inv, f)).map((f) => [f, inv[f]]))),
  );
}
