import { CompiledQuery } from 'kysely';
import type { Db } from '../db/connect.js';
import type { ImageBackupStorageRefTable, ImageTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { INVENTORY_CLASS } from '../lib/inventory-class.js';
import { AddsInFlight } from './adds-in-flight.js';
import { fewPredicate, fewSets } from './image-few.js';
import type { Condition } from './query.js';
import { ImageTally } from './image-tally.js';
import { imageInventory } from './inventory.js';
import { page } from './paging.js';
import { conditionsFor, ownEntry, parseQueryRequest, pickFields, type QueryRequest, type QueryTarget, sortColumn } from './query.js';

export const IMAGE_VO = 'ImageVO';

const IMAGE_QUERY: QueryTarget<'image'> = {
  table: 'image',
  inventoryClass: INVENTORY_CLASS.image,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    name: { column: 'name', kind: 'string' },
    description: { column: 'description', kind: 'string' },
    state: { column: 'state', kind: 'string' },
    status: { column: 'status', kind: 'string' },
    size: { column: 'size', kind: 'number' },
    actualSize: { column: 'actual_size', kind: 'number' },
    md5Sum: { column: 'md5_sum', kind: 'string' },
    url: { column: 'url', kind: 'string' },
    mediaType: { column: 'media_type', kind: 'string' },
    guestOsType: { column: 'guest_os_type', kind: 'string' },
    type: { column: 'type', kind: 'string' },
    platform: { column: 'platform', kind: 'string' },
    architecture: { column: 'architecture', kind: 'string' },
    format: { column: 'format', kind: 'string' },
    system: { column: 'system', kind: 'boolean' },
    virtio: { column: 'virtio', kind: 'boolean' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
  },
  nested: {
    backupStorageRefs: (field, cmp, eb) => {
      const cols: Record<string, [string, 'string' | 'date']> = {
        imageUuid: ['image_uuid', 'string'],
        backupStorageUuid: ['backup_storage_uuid', 'string'],
        installPath: ['install_path', 'string'],
        status: ['status', 'string'],
        exportMd5Sum: ['export_md5_sum', 'string'],
        exportUrl: ['export_url', 'string'],
        createDate: ['create_date', 'date'],
        lastOpDate: ['last_op_date', 'date'],
      };
      const col = ownEntry(cols, field);
      if (!col) return undefined;
      return eb.exists(
        eb
          .selectFrom('image_backup_storage_ref as r')
          .select('r.image_uuid')
          .whereRef('r.image_uuid', '=', 'image.uuid')
          .where(() => cmp(`r.${col[0]}`, col[1])),
      );
    },
    // ZStack's alias: backupStorage.<field> = backupStorageRef.backupStorage.<field>
    backupStorage: (field, cmp, eb) => {
      const cols: Record<string, [string, 'string' | 'number']> = {
        uuid: ['uuid', 'string'],
        name: ['name', 'string'],
        type: ['type', 'string'],
        url: ['url', 'string'],
        state: ['state', 'string'],
        status: ['status', 'string'],
        totalCapacity: ['total_capacity', 'number'],
        availableCapacity: ['available_capacity', 'number'],
      };
      const col = ownEntry(cols, field);
      if (!col) return undefined;
      return eb.exists(
        eb
          .selectFrom('image_backup_storage_ref as r')
          .innerJoin('backup_storage as b', 'b.uuid', 'r.backup_storage_uuid')
          .select('r.image_uuid')
          .whereRef('r.image_uuid', '=', 'image.uuid')
          .where(() => cmp(`b.${col[0]}`, col[1])),
      );
    },
  },
};

/** Reads images and their refs; shared by the add, measure and query paths. */
export class ImageStore {
  /** Adds running in this process, so that DeleteImage can stop them. */
  readonly addsInFlight = new AddsInFlight();
  private readonly tally: ImageTally;

  constructor(readonly db: Db) {
    this.tally = new ImageTally(db);
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

  async inventory(uuid: string): Promise<Record<string, unknown>> {
    const image = await this.require(uuid);
    return imageInventory(image, await this.refs(uuid));
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
      lines.push(...res.rows.map((r) => prefix + String(r.detail ?? r['QUERY PLAN'] ?? JSON.stringify(r))));
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
