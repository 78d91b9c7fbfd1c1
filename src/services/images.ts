import { CompiledQuery } from 'kysely';
import type { Db } from '../db/connect.js';
import type { ImageBackupStorageRefTable, ImageTable } from '../db/schema.js';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import { AddsInFlight } from './adds-in-flight.js';
import { DigestStore } from './digests.js';
import { fewPredicate, fewSets } from './image-few.js';
import { IMAGE_QUERY } from './image-query-target.js';
import type { Condition } from './query.js';
import { ImageTally } from './image-tally.js';
import { imageInventory } from './inventory.js';
import { page } from './paging.js';
import { conditionsFor, parseQueryRequest, pickFields, type QueryRequest, sortColumn } from './query.js';

export const IMAGE_VO = 'ImageVO';

/** What the import step measured on the stored copies, written when the image turns Ready. */
export interface ReadyImage {
  size: number;
  actualSize: number;
  md5: string | null;
  format: string;
}

/** A copy's place: where an image's bytes are on one backup storage. */
export interface CopyPlace {
  backupStorageUuid: string;
  installPath: string;
}

export type CopyDeletionPolicy = 'Direct' | 'Delay' | 'Never';

/**
 * The image and image_backup_storage_ref rows: every read the add, measure, export, lifecycle and query
 * paths need, and the only place that writes them (with the digests and tags that go with an image).
 */
export class ImageStore {
  /** Adds running in this process, so that DeleteImage can stop them. */
  readonly addsInFlight = new AddsInFlight();
  /** Every digest computed per copy (GetImageDigests reads it). */
  readonly digests: DigestStore;
  private readonly tally: ImageTally;

  constructor(readonly db: Db) {
    this.tally = new ImageTally(db);
    this.digests = new DigestStore(db);
  }

  async get(uuid: string): Promise<ImageTable | undefined> {
    return this.db.selectFrom('image').selectAll().where('uuid', '=', uuid).executeTakeFirst();
  }

  async require(uuid: string, field = 'uuid'): Promise<ImageTable> {
    const image = await this.get(uuid);
    if (!image) throw new ZStackError('SYS.1003', `invalid field[${field}], resource[uuid:${uuid}, type:${IMAGE_VO}] not found`);
    return image;
  }

  async refs(imageUuid: string): Promise<ImageBackupStorageRefTable[]> {
    return this.db
      .selectFrom('image_backup_storage_ref')
      .selectAll()
      .where('image_uuid', '=', imageUuid)
      .orderBy('create_date')
      .orderBy('backup_storage_uuid')
      .execute();
  }

  async ref(imageUuid: string, backupStorageUuid: string): Promise<ImageBackupStorageRefTable | undefined> {
    return this.db
      .selectFrom('image_backup_storage_ref')
      .selectAll()
      .where('image_uuid', '=', imageUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .executeTakeFirst();
  }

  /** The copy whose export link contains `fragment` (matched literally: callers pass hex tokens and fixed paths). */
  async refExportedAt(fragment: string): Promise<ImageBackupStorageRefTable | undefined> {
    return this.db.selectFrom('image_backup_storage_ref').selectAll().where('export_url', 'like', `%${fragment}%`).executeTakeFirst();
  }

  /** Images still Downloading (at start-up: adds a previous process left unfinished). */
  async downloading(): Promise<string[]> {
    const rows = await this.db.selectFrom('image').select('uuid').where('status', '=', 'Downloading').execute();
    return rows.map((r) => r.uuid);
  }

  async inventory(uuid: string): Promise<Record<string, unknown>> {
    const image = await this.require(uuid);
    return imageInventory(image, await this.refs(uuid));
  }

  /** AddImage's first write: the image and its refs (Downloading) and the tags given with the call, at once. */
  async create(
    image: ImageTable,
    refs: ImageBackupStorageRefTable[],
    tags: Array<{ tag: string; type: 'System' | 'User' }>,
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('image').values(image).execute();
      await trx.insertInto('image_backup_storage_ref').values(refs).execute();
      if (tags.length) {
        await trx
          .insertInto('tag')
          .values(
            tags.map((t) => ({
              uuid: newUuid(),
              resource_uuid: image.uuid,
              resource_type: IMAGE_VO,
              tag: t.tag,
              type: t.type,
              create_date: image.create_date,
            })),
          )
          .execute();
      }
    });
  }

  /** Changes the image's own fields (UpdateImage, ChangeImageState, an upload's URL). */
  async update(uuid: string, set: Partial<Omit<ImageTable, 'uuid'>>): Promise<void> {
    await this.db
      .updateTable('image')
      .set({ last_op_date: Date.now(), ...set })
      .where('uuid', '=', uuid)
      .execute();
  }

  /**
   * The end of an add, in one transaction: the image Ready with what was measured, each copy Ready at its
   * path, the import's digests recorded. Only while the image is still Downloading: false (nothing written)
   * when it was deleted meanwhile, maybe by another node.
   */
  async markReady(
    uuid: string,
    measured: ReadyImage,
    copies: CopyPlace[],
    digests: DigestResult,
    fence?: (trx: Db) => Promise<void>,
  ): Promise<boolean> {
    const done = Date.now();
    return this.db.transaction().execute(async (trx) => {
      // A node that lost the job (another node took it over) must not commit: checked in this transaction.
      await fence?.(trx);
      const res = await trx
        .updateTable('image')
        .set({
          status: 'Ready',
          size: measured.size,
          actual_size: measured.actualSize,
          md5_sum: measured.md5,
          format: measured.format,
          last_op_date: done,
        })
        .where('uuid', '=', uuid)
        .where('status', '=', 'Downloading')
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) return false;
      for (const c of copies) {
        await trx
          .updateTable('image_backup_storage_ref')
          .set({ status: 'Ready', install_path: c.installPath, last_op_date: done })
          .where('image_uuid', '=', uuid)
          .where('backup_storage_uuid', '=', c.backupStorageUuid)
          .execute();
        await this.digests.record(uuid, c.backupStorageUuid, digests, 'import', done, trx);
      }
      return true;
    });
  }

  /** SyncImageSize's result. */
  async setSizes(uuid: string, size: number, actualSize: number): Promise<void> {
    await this.update(uuid, { size, actual_size: actualSize });
  }

  /** CalculateImageHash's result: the digest becomes md5Sum (as ZStack does) and is recorded for the copy. */
  async recordHash(
    uuid: string,
    backupStorageUuid: string,
    algorithm: DigestAlgorithm,
    digest: string,
    fence?: (trx: Db) => Promise<void>,
  ): Promise<void> {
    const now = Date.now();
    await this.db.transaction().execute(async (trx) => {
      // A node that lost the job (another node took it over) must not record its digest: checked in this transaction.
      await fence?.(trx);
      await trx.updateTable('image').set({ md5_sum: digest, last_op_date: now }).where('uuid', '=', uuid).execute();
      await this.digests.record(uuid, backupStorageUuid, { [algorithm]: digest }, 'calculate', now, trx);
    });
  }

  /** An image's status, as its copies settle it (ImageLifecycle). */
  async setStatus(uuid: string, status: 'Ready' | 'Error' | 'Deleted'): Promise<void> {
    await this.update(uuid, { status });
  }

  /** A copy Deleted under a policy (kept until expunged), or Ready again (RecoverImage). */
  async setRefStatus(
    imageUuid: string,
    backupStorageUuid: string,
    status: 'Deleted' | 'Ready',
    policy?: CopyDeletionPolicy,
  ): Promise<void> {
    const now = Date.now();
    await this.db
      .updateTable('image_backup_storage_ref')
      .set({
        status,
        deleted_date: status === 'Deleted' ? now : null,
        deletion_policy: status === 'Deleted' ? (policy ?? null) : null,
        last_op_date: now,
      })
      .where('image_uuid', '=', imageUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .execute();
  }

  /**
   * A copy whose stored bytes were found unsafe (or missing) is `Error` — one of ZStack's ImageStatus values,
   * so clients show it — and is neither exported nor hashed until a SyncImageSize finds it sound again.
   * The image follows its copies: `Error` while none is Ready, `Ready` again once one is.
   */
  async setCopyStatus(imageUuid: string, backupStorageUuid: string, status: 'Ready' | 'Error'): Promise<void> {
    const now = Date.now();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('image_backup_storage_ref')
        .set({ status, last_op_date: now })
        .where('image_uuid', '=', imageUuid)
        .where('backup_storage_uuid', '=', backupStorageUuid)
        .where('status', 'in', ['Ready', 'Error'])
        .execute();
      const refs = await trx.selectFrom('image_backup_storage_ref').select('status').where('image_uuid', '=', imageUuid).execute();
      const imageStatus = refs.some((r) => r.status === 'Ready') ? 'Ready' : refs.some((r) => r.status === 'Error') ? 'Error' : undefined;
      if (imageStatus) {
        await trx
          .updateTable('image')
          .set({ status: imageStatus, last_op_date: now })
          .where('uuid', '=', imageUuid)
          .where('status', 'in', ['Ready', 'Error'])
          .where('status', '!=', imageStatus)
          .execute();
      }
    });
  }

  /** Records (or, with nulls, withdraws) a copy's export link. */
  async setExport(imageUuid: string, backupStorageUuid: string, url: string | null, md5: string | null): Promise<void> {
    await this.db
      .updateTable('image_backup_storage_ref')
      .set({ export_url: url, export_md5_sum: md5, last_op_date: Date.now() })
      .where('image_uuid', '=', imageUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .execute();
  }

  /** Forgets one copy: its ref and its digests (its bytes are the caller's business). */
  async removeCopy(imageUuid: string, backupStorageUuid: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom('image_backup_storage_ref')
        .where('image_uuid', '=', imageUuid)
        .where('backup_storage_uuid', '=', backupStorageUuid)
        .execute();
      await trx
        .deleteFrom('image_digest')
        .where('image_uuid', '=', imageUuid)
        .where('backup_storage_uuid', '=', backupStorageUuid)
        .execute();
    });
  }

  /** Forgets an image: refs, digests, tags and the row, at once. */
  async remove(uuid: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('image_backup_storage_ref').where('image_uuid', '=', uuid).execute();
      await trx.deleteFrom('image_digest').where('image_uuid', '=', uuid).execute();
      await trx.deleteFrom('tag').where('resource_uuid', '=', uuid).execute();
      await trx.deleteFrom('image').where('uuid', '=', uuid).execute();
    });
  }

  /** `few`: conditions whose small sets are read first (image-few.ts); the others are EXISTS probes. */
  private filtered(req: Pick<QueryRequest, 'conditions'>, few: ReadonlySet<Condition> = new Set()) {
    return this.db.selectFrom('image').where((eb) =>
      eb.and([
        ...conditionsFor(
          IMAGE_QUERY,
          req.conditions.filter((c) => !few.has(c)),
          eb,
        ),
        ...req.conditions.filter((c) => few.has(c)).map((c) => fewPredicate(eb, c)),
      ]),
    );
  }

  private rowsQuery(req: Pick<QueryRequest, 'conditions' | 'sort' | 'limit' | 'start'>, few?: ReadonlySet<Condition>) {
    let rows = this.filtered(req, few).selectAll();
    rows = req.sort ? rows.orderBy(sortColumn(IMAGE_QUERY, req.sort.field) as any, req.sort.direction) : rows.orderBy('create_date');
    return page(rows, req.limit, req.start);
  }

  /**
   * The database's plans for a QueryImage (EXPLAIN QUERY PLAN / EXPLAIN), to check they use indexes: the
   * count's (lines prefixed `count: `) when it asks for a total, then the page's unless it is `count=true`.
   */
  async explain(rawQuery: Record<string, string | string[]>): Promise<string[]> {
    const req = parseQueryRequest(rawQuery);
    const few = await fewSets(this.db, req.conditions);
    const queries = [
      ...(req.count || req.replyWithCount ? [{ prefix: 'count: ', compiled: this.countQuery(req, few).compile() }] : []),
      ...(req.count ? [] : [{ prefix: '', compiled: this.rowsQuery(req, few).compile() }]),
    ];
    const sqlite = this.db.getExecutor().adapter.constructor.name.toLowerCase().includes('sqlite');
    const lines: string[] = [];
    for (const { prefix, compiled } of queries) {
      const res = await this.db.executeQuery<Record<string, unknown>>(
        CompiledQuery.raw(`${sqlite ? 'EXPLAIN QUERY PLAN' : 'EXPLAIN'} ${compiled.sql}`, [...compiled.parameters]),
      );
      lines.push(
        ...res.rows.map((r) => {
          const plan = r.detail ?? r['QUERY PLAN'];
          return prefix + (typeof plan === 'string' || typeof plan === 'number' ? String(plan) : JSON.stringify(r));
        }),
      );
    }
    return lines;
  }

  /** The count of a query: from the tally when it can answer exactly (state/status equalities), else COUNT(*). */
  private countQuery(req: Pick<QueryRequest, 'conditions'>, few: ReadonlySet<Condition>) {
    if (ImageTally.answers(req.conditions)) return this.tally.countQuery(req.conditions);
    return this.filtered(req, few).select((eb) => eb.fn.countAll<number>().as('n'));
  }

  private async count(req: Pick<QueryRequest, 'conditions'>, few: ReadonlySet<Condition>): Promise<number> {
    if (ImageTally.answers(req.conditions)) return this.tally.count(req.conditions);
    return Number((await this.countQuery(req, few).executeTakeFirstOrThrow()).n);
  }

  /** QueryImage: ZStack's query language over ImageInventory. */
  async query(rawQuery: Record<string, string | string[]>, uuid?: string): Promise<Record<string, unknown>> {
    const req: QueryRequest = uuid
      ? { conditions: [{ field: 'uuid', op: '=' as const, value: uuid }], count: false, replyWithCount: false }
      : parseQueryRequest(rawQuery);
    const few = await fewSets(this.db, req.conditions);
    const total = req.count || req.replyWithCount ? await this.count(req, few) : undefined;
    if (req.count) return { total };
    const images = await this.rowsQuery(req, few).execute();
    const refs = images.length
      ? await this.db
          .selectFrom('image_backup_storage_ref')
          .selectAll()
          .where(
            'image_uuid',
            'in',
            images.map((i) => i.uuid),
          )
          .execute()
      : [];
    const byImage = new Map<string, ImageBackupStorageRefTable[]>();
    for (const r of refs) byImage.set(r.image_uuid, [...(byImage.get(r.image_uuid) ?? []), r]);
    const inventories = pickFields(
      images.map((i) => imageInventory(i, byImage.get(i.uuid) ?? [])),
      req.fields,
      () => IMAGE_QUERY.inventoryClass,
    );
    return { inventories, ...(total !== undefined ? { total } : {}) };
  }
}
