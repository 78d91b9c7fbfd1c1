import type { Db } from '../src/db/connect.js';
import { STEP, T0 } from './query-bulk.js';

export interface QueryShape {
  label: string;
  /** The bench's target for the median, in ms. */
  targetMs: number;
  query: Record<string, string | string[]>;
}

/** What the shapes need from the library: its storages (largest share first) and one image name in it. */
export interface ShapeContext {
  storages: string[];
  /** A storage added after the library: no image has a copy on it. */
  emptyStorage: string;
  name: string;
}

/** The name of the image in the middle of a bulkSeed library (names repeat: it may match a few images). */
export async function sampleName(db: Db, n: number): Promise<string> {
  const row = await db
    .selectFrom('image')
    .select('name')
    .where('create_date', '=', T0 + Math.floor(n / 2) * STEP)
    .executeTakeFirstOrThrow();
  return row.name;
}

/** The QueryImage shapes the benchmark times and the plan test checks (each must use indexes only). */
export function queryShapes(ctx: ShapeContext): QueryShape[] {
  const newest = { sort: '-createDate', limit: '50' };
  return [
    {
      label: 'status=Ready, newest first, page 6 of 20',
      targetMs: 20,
      query: { q: 'status=Ready', sort: '-createDate', limit: '20', start: '100' },
    },
    {
      label: 'state=Enabled and status=Ready, count + page',
      targetMs: 20,
      query: { q: ['state=Enabled', 'status=Ready'], sort: '-createDate', limit: '50', replyWithCount: 'true' },
    },
    { label: `name=${ctx.name}`, targetMs: 20, query: { q: `name=${ctx.name}` } },
    { label: 'count=true over all', targetMs: 100, query: { count: 'true' } },
    { label: 'count=true, status=Deleted', targetMs: 100, query: { q: 'status=Deleted', count: 'true' } },
    {
      label: 'backupStorageRefs.backupStorageUuid= (15% share), newest 50',
      targetMs: 50,
      query: { q: `backupStorageRefs.backupStorageUuid=${ctx.storages[2]}`, ...newest },
    },
    {
      label: 'backupStorageRefs.backupStorageUuid= (8% share), newest 50',
      targetMs: 50,
      query: { q: `backupStorageRefs.backupStorageUuid=${ctx.storages[4]}`, ...newest },
    },
    {
      label: 'backupStorageRefs.backupStorageUuid= (new, empty storage)',
      targetMs: 50,
      query: { q: `backupStorageRefs.backupStorageUuid=${ctx.emptyStorage}`, ...newest },
    },
    { label: '__systemTag__=bootMode::UEFI, newest 50', targetMs: 50, query: { q: '__systemTag__=bootMode::UEFI', ...newest } },
    {
      label: '__systemTag__=bootMode::UEFI and status=Ready, newest 50',
      targetMs: 50,
      query: { q: ['__systemTag__=bootMode::UEFI', 'status=Ready'], ...newest },
    },
    { label: '__userTag__=team-39 (a rare tag), newest 50', targetMs: 50, query: { q: '__userTag__=team-39', ...newest } },
  ];
}
