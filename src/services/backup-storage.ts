import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { BackupStorageTable } from '../db/schema.js';
import { StorageError, ZStackError } from '../lib/errors.js';
import { newUuid, resourceUuidProblem } from '../lib/ids.js';
import { classOf, INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import type { SecretBox } from '../lib/secret-box.js';
import type { BackupStorageDriver, Capacity } from '../storage/driver.js';
import { STORAGE_TYPES } from '../storage/index.js';
import { backupStorageInventory } from './inventory.js';
import { page } from './paging.js';
import { conditionsFor, ownEntry, parseQueryRequest, pickFields, type QueryTarget, sortColumn } from './query.js';

const BS_VO = 'BackupStorageVO';

const TYPES = new Map(STORAGE_TYPES.map((t) => [t.type, t]));
export const BACKUP_STORAGE_TYPES = [...TYPES.keys()];

const BS_QUERY: QueryTarget<'backup_storage'> = {
  table: 'backup_storage',
  inventoryClass: INVENTORY_CLASS.backupStorage,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    name: { column: 'name', kind: 'string' },
    url: { column: 'url', kind: 'string' },
    description: { column: 'description', kind: 'string' },
    totalCapacity: { column: 'total_capacity', kind: 'number' },
    availableCapacity: { column: 'available_capacity', kind: 'number' },
    type: { column: 'type', kind: 'string' },
    state: { column: 'state', kind: 'string' },
    status: { column: 'status', kind: 'string' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
  },
  nested: {
    // zone.<field>: the zones the storage is attached to (BackupStorageInventory's expanded query `zone`).
    zone: (field, cmp, eb) => {
      const cols: Record<string, [string, 'string' | 'date']> = {
        uuid: ['uuid', 'string'],
        name: ['name', 'string'],
        description: ['description', 'string'],
        state: ['state', 'string'],
        type: ['type', 'string'],
        createDate: ['create_date', 'date'],
        lastOpDate: ['last_op_date', 'date'],
      };
      const col = ownEntry(cols, field);
      if (!col) return undefined;
      return eb.exists(
        eb
          .selectFrom('backup_storage_zone_ref as zr')
          .innerJoin('zone as z', 'z.uuid', 'zr.zone_uuid')
          .select('zr.zone_uuid')
          .whereRef('zr.backup_storage_uuid', '=', 'backup_storage.uuid')
          .where(() => cmp(`z.${col[0]}`, col[1])),
      );
    },
  },
  lists: {
    attachedZoneUuids: (cmp, eb) =>
      eb.exists(
        eb
          .selectFrom('backup_storage_zone_ref as zr')
          .select('zr.zone_uuid')
          .whereRef('zr.backup_storage_uuid', '=', 'backup_storage.uuid')
          .where(() => cmp('zr.zone_uuid', 'string')),
      ),
  },
};

/** A storage row with the zones it is attached to (BackupStorageInventory.attachedZoneUuids). */
export type BackupStorageRow = BackupStorageTable & { attachedZoneUuids?: string[] };

/** The fields of the base BackupStorageInventory (zimage's statusReason included). */
const BASE_FIELDS = new Set([...Object.keys(BS_QUERY.fields), 'attachedZoneUuids', 'statusReason']);

/** A storage failure as the ZStack error a user sees. */
export function storageFailure(err: unknown, what: string): ZStackError {
  if (err instanceof ZStackError) return err;
  if (err instanceof StorageError) {
    const code = err.kind === 'unreachable' || err.kind === 'io' ? 'SYS.1016' : 'SYS.1006';
    return new ZStackError(code, `${what}: ${err.message}`);
  }
  return new ZStackError('SYS.1006', `${what}: ${(err as Error)?.message ?? String(err)}`);
}

export class BackupStorageService {
  private readonly drivers = new Map<string, BackupStorageDriver>();
  /** This node: the owner recorded on the local-directory storages it adds (their bytes are on its disk). */
  nodeId?: string;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly secrets: SecretBox,
  ) {}

  /** A storage's settings, decrypted. */
  configOf(row: BackupStorageTable): Record<string, unknown> {
    return JSON.parse(this.secrets.open(row.config)) as Record<string, unknown>;
  }

  private sealConfig(config: Record<string, unknown>): string {
    return this.secrets.seal(JSON.stringify(config));
  }

  /** The inventory of a storage row, with its type's own fields (never secrets). */
  inventory(row: BackupStorageRow): Record<string, unknown> {
    const def = TYPES.get(row.type);
    const base = backupStorageInventory(row) as Record<string, unknown> & { uuid: string; createDate: string; lastOpDate: string };
    const extra = def?.inventoryFields?.(this.configOf(row), base) ?? {};
    return withClass(def?.inventoryClass ?? INVENTORY_CLASS.backupStorage, { ...base, ...extra });
  }

  async get(uuid: string): Promise<BackupStorageRow | undefined> {
    const row: BackupStorageRow | undefined = await this.db
      .selectFrom('backup_storage')
      .selectAll()
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    if (row) row.attachedZoneUuids = (await this.zoneUuidsOf([uuid])).get(uuid) ?? [];
    return row;
  }

  /** The zones each storage is attached to. */
  private async zoneUuidsOf(uuids: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (!uuids.length) return out;
    const refs = await this.db
      .selectFrom('backup_storage_zone_ref')
      .select(['backup_storage_uuid', 'zone_uuid'])
      .where('backup_storage_uuid', 'in', uuids)
      .orderBy('create_date')
      .execute();
    for (const r of refs) out.set(r.backup_storage_uuid, [...(out.get(r.backup_storage_uuid) ?? []), r.zone_uuid]);
    return out;
  }

  /** The row, or SYS.1003 naming the field the uuid came from. */
  async require(uuid: string, field = 'uuid'): Promise<BackupStorageRow> {
    const row = await this.get(uuid);
    if (!row) throw new ZStackError('SYS.1003', `invalid field[${field}], resource[uuid:${uuid}, type:${BS_VO}] not found`);
    return row;
  }

  /** Every uuid of a list param must name a storage: SYS.1003 listing the unknown ones (ZStack's PortApiValidator). */
  async requireAll(uuids: string[], field: string): Promise<BackupStorageTable[]> {
    if (uuids.length === 0) return [];
    const rows = await this.db.selectFrom('backup_storage').selectAll().where('uuid', 'in', uuids).execute();
    const invalid = uuids.filter((u) => !rows.some((r) => r.uuid === u));
    if (invalid.length) {
      throw new ZStackError('SYS.1003', `invalid field[${field}], resource[uuids:[${invalid.join(', ')}], type:${BS_VO}] not found`);
    }
    return rows;
  }

  driver(row: BackupStorageTable): BackupStorageDriver {
    let d = this.drivers.get(row.uuid);
    if (!d) {
      const def = TYPES.get(row.type);
      if (!def) throw new ZStackError('SYS.1014', `backup storage type[${row.type}] is not supported by this zimage`);
      d = def.create({
        uuid: row.uuid,
        url: row.url,
        config: this.configOf(row),
        saveConfig: (patch) => this.saveConfig(row.uuid, patch),
      });
      this.drivers.set(row.uuid, d);
    }
    return d;
  }

  /** Merges settings a driver learned into the row (a row not yet inserted keeps them in memory). */
  private readonly pendingConfig = new Map<string, Record<string, unknown>>();
  private async saveConfig(uuid: string, patch: Record<string, unknown>): Promise<void> {
    const row = await this.get(uuid);
    if (!row) {
      this.pendingConfig.set(uuid, { ...(this.pendingConfig.get(uuid) ?? {}), ...patch });
      return;
    }
    const merged = { ...this.configOf(row), ...patch };
    await this.db
      .updateTable('backup_storage')
      .set({ config: this.sealConfig(merged) })
      .where('uuid', '=', uuid)
      .execute();
  }

  /** AddBackupStorage for any type: connects first; a storage that cannot be reached is not added. */
  async add(input: {
    type: string;
    name: string;
    url: string;
    description?: string;
    resourceUuid?: string;
    config?: Record<string, unknown>;
  }): Promise<Record<string, unknown>> {
    const badUuid = resourceUuidProblem(input.resourceUuid);
    if (badUuid) throw new ZStackError('SYS.1007', badUuid);
    const uuid = input.resourceUuid ?? newUuid();
    if (await this.get(uuid)) throw new ZStackError('SYS.1007', `resourceUuid[${uuid}] is already used by another backup storage`);
    const now = Date.now();
    const row: BackupStorageTable = {
      uuid,
      name: input.name,
      description: input.description ?? null,
      url: input.url,
      type: input.type,
      state: 'Enabled',
      status: 'Connecting',
      status_reason: null,
      total_capacity: 0,
      available_capacity: 0,
      config: this.sealConfig(input.config ?? {}),
      create_date: now,
      last_op_date: now,
      owner_node: input.type === 'LocalBackupStorage' ? (this.nodeId ?? null) : null,
    };
    const driver = this.driver(row);
    let capacity: Capacity;
    try {
      capacity = await driver.connect();
    } catch (err) {
      this.drivers.delete(uuid);
      this.pendingConfig.delete(uuid);
      await driver.close().catch(() => {});
      // BackupStorageManagerImpl: SYS.1002 with the connect error (operr) as its cause and its text.
      const text = `cannot connect backup storage[name:${input.name}, url:${input.url}]`;
      const cause = err instanceof ZStackError ? err : new ZStackError('SYS.1006', `${text}: ${(err as Error)?.message ?? String(err)}`);
      throw new ZStackError('SYS.1002', cause.details, cause);
    }
    row.status = 'Connected';
    row.config = this.sealConfig({ ...(input.config ?? {}), ...(this.pendingConfig.get(uuid) ?? {}) });
    this.pendingConfig.delete(uuid);
    row.total_capacity = capacity.totalCapacity;
    row.available_capacity = capacity.availableCapacity;
    await this.db.insertInto('backup_storage').values(row).execute();
    return this.inventory(row);
  }

  /** Connects again and records the outcome (status, reason, capacity). Returns the fresh row. */
  async reconnect(uuid: string): Promise<BackupStorageTable> {
    const row = await this.require(uuid);
    let update: Partial<BackupStorageTable>;
    try {
      const cap = await this.driver(row).connect();
      update = { status: 'Connected', status_reason: null, total_capacity: cap.totalCapacity, available_capacity: cap.availableCapacity };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      update = { status: 'Disconnected', status_reason: reason };
      if (row.status !== 'Disconnected') this.log.warn({ backupStorage: uuid, reason }, 'backup storage disconnected');
    }
    const changed = update.status !== row.status || update.status_reason !== row.status_reason;
    const next = { ...row, ...update, last_op_date: changed ? Date.now() : row.last_op_date };
    await this.db
      .updateTable('backup_storage')
      .set({ ...update, last_op_date: next.last_op_date })
      .where('uuid', '=', uuid)
      .execute();
    return next;
  }

  /** Refreshes capacity after bytes were added or removed (the storage reports, the server overwrites). */
  async refreshCapacity(uuid: string): Promise<void> {
    await this.reconnect(uuid).catch((err) => this.log.warn({ err, backupStorage: uuid }, 'capacity refresh failed'));
  }

  /**
   * Pings storages ('shared': those any node reaches, by the node running periodic work; 'owned': the
   * local-directory storages on this node's disk); a vanished one turns Disconnected with a reason, and back.
   */
  async pingAll(which: 'all' | 'shared' | 'owned' = 'all'): Promise<void> {
    let q = this.db.selectFrom('backup_storage').select('uuid');
    if (which === 'shared') q = q.where('owner_node', 'is', null);
    if (which === 'owned') q = q.where('owner_node', '=', this.nodeId ?? '');
    const rows = await q.execute();
    await Promise.all(rows.map((r) => this.reconnect(r.uuid).catch(() => undefined)));
  }

  /**
   * A storage able to take work now, checked live (not from a stale row): Connected, and Enabled for a write;
   * else SYS.1006. The caller has already checked that it exists.
   */
  async usable(uuid: string, forWrite: boolean): Promise<{ row: BackupStorageTable; driver: BackupStorageDriver }> {
    const row = await this.reconnect(uuid);
    if (row.status !== 'Connected') {
      throw new ZStackError(
        'SYS.1006',
        `backup storage[uuid:${uuid}, name:${row.name}] is not Connected (status ${row.status}${row.status_reason ? `: ${row.status_reason}` : ''})`,
      );
    }
    if (forWrite && row.state !== 'Enabled') {
      throw new ZStackError('SYS.1006', `backup storage[uuid:${uuid}, name:${row.name}] is ${row.state}; enable it before adding images`);
    }
    return { row, driver: this.driver(row) };
  }

  async delete(uuid: string): Promise<void> {
    const row = await this.get(uuid);
    if (!row) return; // ZStack: deleting an unknown resource succeeds
    const held = await this.db
      .selectFrom('image_backup_storage_ref')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('backup_storage_uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    if (Number(held.n) > 0) {
      throw new ZStackError(
        'SYS.1004',
        `backup storage[uuid:${uuid}, name:${row.name}] still holds ${held.n} image cop${Number(held.n) === 1 ? 'y' : 'ies'}; delete and expunge them first`,
      );
    }
    await this.db.deleteFrom('backup_storage_zone_ref').where('backup_storage_uuid', '=', uuid).execute();
    await this.db.deleteFrom('tag').where('resource_uuid', '=', uuid).execute();
    await this.db.deleteFrom('backup_storage').where('uuid', '=', uuid).execute();
    this.log.info({ event: 'backup-storage.delete', backupStorage: uuid, name: row.name, type: row.type }, 'backup storage deleted');
    const d = this.drivers.get(uuid);
    this.drivers.delete(uuid);
    await d?.close().catch(() => {});
  }

  async query(rawQuery: Record<string, string | string[]>, uuid?: string, type?: string): Promise<Record<string, unknown>> {
    const req = uuid
      ? { conditions: [{ field: 'uuid', op: '=' as const, value: uuid }], count: false, replyWithCount: false }
      : parseQueryRequest(rawQuery);
    let q = this.db.selectFrom('backup_storage').where((eb) => eb.and(conditionsFor(BS_QUERY, req.conditions, eb)));
    if (type) q = q.where('type', '=', type);
    const total =
      req.count || req.replyWithCount
        ? Number((await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
        : undefined;
    if (req.count) return { total };
    let rows = q.selectAll();
    if ('sort' in req && req.sort) rows = rows.orderBy(sortColumn(BS_QUERY, req.sort.field) as any, req.sort.direction);
    if ('limit' in req || 'start' in req) rows = page(rows, 'limit' in req ? req.limit : undefined, 'start' in req ? req.start : undefined);
    const fields = 'fields' in req ? req.fields : undefined;
    const found = await rows.execute();
    const zones = await this.zoneUuidsOf(found.map((r) => r.uuid));
    const inventories = pickFields(
      found.map((r) => this.inventory({ ...r, attachedZoneUuids: zones.get(r.uuid) ?? [] })),
      fields,
      (inv) => {
        if (type) return TYPES.get(type)?.inventoryClass ?? BS_QUERY.inventoryClass;
        // ZStack's projection of QueryBackupStorage is a BackupStorageInventory; a field only a type has (e.g.
        // mons) keeps the storage's own class, so that the SDK finds the field it is told about.
        return fields!.every((f) => BASE_FIELDS.has(f)) ? BS_QUERY.inventoryClass : classOf(inv)!;
      },
    );
    return { inventories, ...(total !== undefined ? { total } : {}) };
  }

  async changeState(uuid: string, state: 'Enabled' | 'Disabled'): Promise<BackupStorageTable> {
    const row = await this.require(uuid);
    const now = Date.now();
    await this.db.updateTable('backup_storage').set({ state, last_op_date: now }).where('uuid', '=', uuid).execute();
    return { ...row, state, last_op_date: now };
  }

  /** GetBackupStorageCapacity: sums over the named storages, or every storage when `uuids` is undefined. */
  async capacity(uuids?: string[]): Promise<{ totalCapacity: number; availableCapacity: number }> {
    if (uuids && uuids.length === 0) return { totalCapacity: 0, availableCapacity: 0 };
    let q = this.db.selectFrom('backup_storage').select(['total_capacity', 'available_capacity']);
    if (uuids) q = q.where('uuid', 'in', uuids);
    const rows = await q.execute();
    return {
      totalCapacity: rows.reduce((n, r) => n + r.total_capacity, 0),
      availableCapacity: rows.reduce((n, r) => n + r.available_capacity, 0),
    };
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.drivers.values()].map((d) => d.close()));
    this.drivers.clear();
  }

  /**
   * Changes a storage's name, description or url and merges `config` into its settings (a key set to null
   * is removed). The storage's driver is closed and built again from the new row on next use. Returns the
   * fresh row; connecting again is the caller's choice.
   */
  async update(
    uuid: string,
    changes: { name?: string; description?: string | null; url?: string; config?: Record<string, unknown> },
  ): Promise<BackupStorageTable> {
    const row = await this.require(uuid);
    const set: Partial<BackupStorageTable> = { last_op_date: Date.now() };
    if (changes.name !== undefined) set.name = changes.name;
    if (changes.description !== undefined) set.description = changes.description;
    if (changes.url !== undefined) set.url = changes.url;
    if (changes.config) {
      const merged: Record<string, unknown> = { ...this.configOf(row), ...changes.config };
      for (const [k, v] of Object.entries(merged)) if (v === null || v === undefined) delete merged[k];
      set.config = this.sealConfig(merged);
    }
    await this.db.updateTable('backup_storage').set(set).where('uuid', '=', uuid).execute();
    const d = this.drivers.get(uuid);
    this.drivers.delete(uuid);
    await d?.close().catch(() => {});
    return { ...row, ...set };
  }
}
