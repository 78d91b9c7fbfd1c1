import type { Kysely } from 'kysely';
import type { Database, UploadStateTable } from '../db/schema.js';
import { type ErrorCodeBody, type ErrorCodeName, ZStackError } from '../lib/errors.js';

export type UploadState = 'Waiting' | 'Running' | 'Succeeded' | 'Failed';
export type UploadRow = UploadStateTable;

/** The fields a PUT changes once its bytes are stored. */
export type UploadProgress = Partial<Pick<UploadRow, 'received' | 'total_size' | 'temp_names' | 'writer' | 'state'>>;

const LIVE: UploadState[] = ['Waiting', 'Running'];

/** The ZStack error a failed upload recorded (its body as JSON). */
export function recordedError(row: UploadRow): ZStackError | undefined {
  if (!row.error) return undefined;
  const rebuild = (b: ErrorCodeBody): ZStackError =>
    new ZStackError(b.code as ErrorCodeName, b.details ?? '', b.cause ? rebuild(b.cause) : undefined, b.opaque);
  return rebuild(JSON.parse(row.error) as ErrorCodeBody);
}

export const jsonList = (text: string | null): string[] => (text ? (JSON.parse(text) as string[]) : []);

/** Storage types whose partial upload bytes every node reaches and resumes (a local directory is one node's disk). */
const ANY_NODE_STORAGE_TYPES = ['SftpBackupStorage', 'Ceph'];

/**
 * Whether the image has an unfinished upload that any node can continue (every storage SFTP or Ceph): such an upload
 * outlives the node that answered AddImage, and only the idle sweep removes it.
 */
export async function uploadOutlivesNode(db: Kysely<Database>, imageUuid: string): Promise<boolean> {
  const row = await db
    .selectFrom('upload_state')
    .select('storage_uuids')
    .where('image_uuid', '=', imageUuid)
    .where('state', 'in', LIVE)
    .executeTakeFirst();
  const uuids = jsonList(row?.storage_uuids ?? null);
  if (uuids.length === 0) return false;
  const types = await db.selectFrom('backup_storage').select('type').where('uuid', 'in', uuids).execute();
  return types.length === uuids.length && types.every((t) => ANY_NODE_STORAGE_TYPES.includes(t.type));
}

/**
 * The upload state every node shares, in the database: one row per upload URL (token). A PUT holds the row's
 * lease (lease_holder/lease_until, taken by one atomic UPDATE, renewed while it runs), so two PUTs for one
 * upload never write at once, whichever nodes they reach; a node that dies mid-PUT loses the lease when it
 * expires. Updates by a PUT name its lease: a writer that lost it changes nothing.
 */
export class UploadStateStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: UploadRow): Promise<void> {
    await this.db.insertInto('upload_state').values(row).execute();
  }

  get(token: string): Promise<UploadRow | undefined> {
    return this.db.selectFrom('upload_state').selectAll().where('token', '=', token).executeTakeFirst();
  }

  /** The newest upload of an image (GetUploadImageJobDetails). */
  byImage(imageUuid: string): Promise<UploadRow | undefined> {
    return this.db
      .selectFrom('upload_state')
      .selectAll()
      .where('image_uuid', '=', imageUuid)
      .orderBy('create_date', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  /** Takes the lease for `holder` if nobody holds it (or the holder's lease ran out); false when held. */
  async claim(token: string, holder: string, now: number, leaseMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('upload_state')
      .set({ lease_holder: holder, lease_until: now + leaseMs })
      .where('token', '=', token)
      .where((eb) => eb.or([eb('lease_holder', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Extends `holder`'s lease; false when it was lost (taken over after it expired). */
  async renew(token: string, holder: string, now: number, leaseMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('upload_state')
      .set({ lease_until: now + leaseMs })
      .where('token', '=', token)
      .where('lease_holder', '=', holder)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async release(token: string, holder: string): Promise<void> {
    await this.db
      .updateTable('upload_state')
      .set({ lease_holder: null, lease_until: null })
      .where('token', '=', token)
      .where('lease_holder', '=', holder)
      .execute();
  }

  /** Records a PUT's progress under its lease; false when the lease was lost. */
  async progress(token: string, holder: string, change: UploadProgress, now: number): Promise<boolean> {
    const res = await this.db
      .updateTable('upload_state')
      .set({ ...change, last_activity: now })
      .where('token', '=', token)
      .where('lease_holder', '=', holder)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** The upload ended (whoever holds the lease): Succeeded, or Failed with the error. */
  async end(token: string, state: 'Succeeded' | 'Failed', now: number, received: number, error?: ZStackError): Promise<void> {
    await this.db
      .updateTable('upload_state')
      .set({
        state,
        received,
        error: error ? JSON.stringify(error.toBody()) : null,
        ended_date: now,
        last_activity: now,
        writer: null,
      })
      .where('token', '=', token)
      .execute();
  }

  /** Unfinished uploads with no bytes since `idleBefore` and no PUT running. */
  idle(idleBefore: number, now: number): Promise<UploadRow[]> {
    return this.db
      .selectFrom('upload_state')
      .selectAll()
      .where('state', 'in', LIVE)
      .where('last_activity', '<=', idleBefore)
      .where((eb) => eb.or([eb('lease_holder', 'is', null), eb('lease_until', '<', now)]))
      .execute();
  }

  /** Forgets ended uploads older than `endedBefore`; how many. */
  async purgeEnded(endedBefore: number): Promise<number> {
    const res = await this.db
      .deleteFrom('upload_state')
      .where('state', 'not in', LIVE)
      .where('ended_date', '<=', endedBefore)
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Forgets unfinished uploads whose image is gone (removed at a restart); how many. */
  async purgeOrphans(): Promise<number> {
    const res = await this.db
      .deleteFrom('upload_state')
      .where('state', 'in', LIVE)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('image').select('image.uuid').whereRef('image.uuid', '=', 'upload_state.image_uuid'))))
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
