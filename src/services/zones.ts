import type { Db } from '../db/connect.js';
import type { ZoneTable } from '../db/schema.js';
import { zstackDate } from '../lib/dates.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid, resourceUuidProblem } from '../lib/ids.js';
import { omitNulls } from './inventory.js';
import { conditionsFor, type QueryTarget, sortColumn } from './query.js';
import { answerQuery, queryRequestOf } from './query-answer.js';

/** The server-side class of the inventory below, as the SDK's SourceClassMap names it. */
export const ZONE_INVENTORY_CLASS = INVENTORY_CLASS.zone;
export const ZONE_VO = 'ZoneVO';
/** BaseZoneFactory's type: the only zone type ZStack's open source has. */
const ZONE_TYPE = 'zstack';

/** ZoneInventory as ZStack writes it (header/.../zone/ZoneInventory.java). */
export function zoneInventory(z: ZoneTable): Record<string, unknown> {
  return withClass(
    ZONE_INVENTORY_CLASS,
    omitNulls({
      uuid: z.uuid,
      name: z.name,
      description: z.description,
      state: z.state,
      type: z.type,
      isDefault: z.is_default === 1,
      createDate: zstackDate(z.create_date),
      lastOpDate: zstackDate(z.last_op_date),
    }),
  );
}

const ZONE_QUERY: QueryTarget<'zone'> = {
  table: 'zone',
  inventoryClass: ZONE_INVENTORY_CLASS,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    name: { column: 'name', kind: 'string' },
    description: { column: 'description', kind: 'string' },
    state: { column: 'state', kind: 'string' },
    type: { column: 'type', kind: 'string' },
    isDefault: { column: 'is_default', kind: 'boolean' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
  },
  nested: {},
};

/**
 * Zones, minimal and honest: zimage has no compute, so a zone is a named group of backup storages
 * (BackupStorageZoneRefVO) and nothing more.
 */
export class ZoneService {
  constructor(private readonly db: Db) {}

  async require(uuid: string, field = 'uuid'): Promise<ZoneTable> {
    const zone = await this.db.selectFrom('zone').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    if (!zone) throw new ZStackError('SYS.1003', `invalid field[${field}], resource[uuid:${uuid}, type:${ZONE_VO}] not found`);
    return zone;
  }

  /** Every uuid of a list param must name a zone: SYS.1003 listing the unknown ones (PortApiValidator). */
  async requireAll(uuids: string[], field: string): Promise<void> {
    if (uuids.length === 0) return;
    const rows = await this.db.selectFrom('zone').select('uuid').where('uuid', 'in', uuids).execute();
    const invalid = uuids.filter((u) => !rows.some((r) => r.uuid === u));
    if (invalid.length)
      throw new ZStackError('SYS.1003', `invalid field[${field}], resource[uuids:[${invalid.join(', ')}], type:${ZONE_VO}] not found`);
  }

  /** The storages attached to any of these zones. */
  async backupStorageUuidsIn(zoneUuids: string[]): Promise<string[]> {
    if (zoneUuids.length === 0) return [];
    const rows = await this.db
      .selectFrom('backup_storage_zone_ref')
      .select('backup_storage_uuid')
      .distinct()
      .where('zone_uuid', 'in', zoneUuids)
      .execute();
    return rows.map((r) => r.backup_storage_uuid);
  }

  async create(p: { name: string; description?: string; isDefault?: boolean; resourceUuid?: string }): Promise<ZoneTable> {
    const badUuid = resourceUuidProblem(p.resourceUuid);
    if (badUuid) throw new ZStackError('SYS.1007', badUuid);
    const uuid = p.resourceUuid ?? newUuid();
    if (await this.db.selectFrom('zone').select('uuid').where('uuid', '=', uuid).executeTakeFirst()) {
      throw new ZStackError('SYS.1007', `resourceUuid[${uuid}] is already used by another zone`);
    }
    const now = Date.now();
    const row: ZoneTable = {
      uuid,
      name: p.name,
      description: p.description ?? null,
      state: 'Enabled',
      type: ZONE_TYPE,
      is_default: p.isDefault ? 1 : 0,
      create_date: now,
      last_op_date: now,
    };
    await this.db.transaction().execute(async (trx) => {
      // One default zone at most: a new default one takes the mark from the others.
      if (row.is_default) await trx.updateTable('zone').set({ is_default: 0 }).execute();
      await trx.insertInto('zone').values(row).execute();
    });
    return row;
  }

  async update(uuid: string, p: { name?: string; description?: string; isDefault?: boolean }): Promise<ZoneTable> {
    const zone = await this.require(uuid);
    const set: Partial<ZoneTable> = {};
    if (p.name !== undefined) set.name = p.name;
    if (p.description !== undefined) set.description = p.description;
    if (p.isDefault !== undefined) set.is_default = p.isDefault ? 1 : 0;
    if (Object.keys(set).length === 0) return zone;
    set.last_op_date = Date.now();
    await this.db.transaction().execute(async (trx) => {
      if (set.is_default === 1) await trx.updateTable('zone').set({ is_default: 0 }).where('uuid', '!=', uuid).execute();
      await trx.updateTable('zone').set(set).where('uuid', '=', uuid).execute();
    });
    return { ...zone, ...set };
  }

  async changeState(uuid: string, stateEvent: 'enable' | 'disable'): Promise<ZoneTable> {
    const zone = await this.require(uuid);
    const state = stateEvent === 'enable' ? 'Enabled' : 'Disabled';
    const now = Date.now();
    await this.db.updateTable('zone').set({ state, last_op_date: now }).where('uuid', '=', uuid).execute();
    return { ...zone, state, last_op_date: now };
  }

  /** DeleteZone: its backup storages are detached (they stay), its tags go with it; an unknown zone is already deleted. */
  async delete(uuid: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('backup_storage_zone_ref').where('zone_uuid', '=', uuid).execute();
      await trx.deleteFrom('tag').where('resource_uuid', '=', uuid).execute();
      await trx.deleteFrom('zone').where('uuid', '=', uuid).execute();
    });
  }

  /** AttachBackupStorageToZone; attaching twice is ZStack's operr (SYS.1006). The storage must exist (checked by the caller). */
  async attachBackupStorage(zoneUuid: string, backupStorageUuid: string): Promise<void> {
    await this.require(zoneUuid, 'zoneUuid');
    if (await this.ref(zoneUuid, backupStorageUuid)) {
      throw new ZStackError('SYS.1006', `backup storage[uuid:${backupStorageUuid}] has been attached to zone[uuid:${zoneUuid}]`);
    }
    const now = Date.now();
    await this.db
      .insertInto('backup_storage_zone_ref')
      .values({ backup_storage_uuid: backupStorageUuid, zone_uuid: zoneUuid, create_date: now, last_op_date: now })
      .execute();
  }

  async detachBackupStorage(zoneUuid: string, backupStorageUuid: string): Promise<void> {
    if (!(await this.ref(zoneUuid, backupStorageUuid))) {
      throw new ZStackError('SYS.1006', `backup storage[uuid:${backupStorageUuid}] has not been attached to zone[uuid:${zoneUuid}]`);
    }
    await this.db
      .deleteFrom('backup_storage_zone_ref')
      .where('zone_uuid', '=', zoneUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .execute();
  }

  private async ref(zoneUuid: string, backupStorageUuid: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('backup_storage_zone_ref')
      .select('zone_uuid')
      .where('zone_uuid', '=', zoneUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** QueryZone with ZStack's query language. */
  async query(rawQuery: Record<string, string | string[]>, uuid?: string): Promise<Record<string, unknown>> {
    const req = queryRequestOf(rawQuery, uuid);
    const base = this.db.selectFrom('zone').where((eb) => eb.and(conditionsFor(ZONE_QUERY, req.conditions, eb)));
    const rows = () => {
      const all = base.selectAll();
      return req.sort ? all.orderBy(sortColumn(ZONE_QUERY, req.sort.field) as any, req.sort.direction) : all.orderBy('create_date');
    };
    return answerQuery(base, req, rows, zoneInventory, () => ZONE_INVENTORY_CLASS);
  }
}
