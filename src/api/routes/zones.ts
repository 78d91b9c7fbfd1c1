import { type Static, Type } from '@sinclair/typebox';
import { zoneInventory } from '../../services/zones.js';
import { type ApiContext, defineApi } from '../registry.js';

const MSG = 'org.zstack.header.zone';
/** APICreateZoneMsg / APIUpdateZoneMsg: no leading or trailing blank, letters, digits, CJK and -_.():+" only. */
const ZONE_NAME = { maxLength: 255, validRegexValues: '^(?! )[\\u4e00-\\u9fa5a-zA-Z0-9\\-_.():+" ]*(?<! )$' };

const ZONE_STORAGE_PARAMS = Type.Object({ zoneUuid: Type.String(), backupStorageUuid: Type.String() });

/** AttachBackupStorageToZone and DetachBackupStorageFromZone: check both uuids, change the link, answer with the storage. */
async function changeZoneStorage(
  ctx: ApiContext,
  p: Static<typeof ZONE_STORAGE_PARAMS>,
  change: 'attachBackupStorage' | 'detachBackupStorage',
): Promise<Record<string, unknown>> {
  await ctx.services.zones.require(p.zoneUuid, 'zoneUuid');
  await ctx.services.backupStorage.require(p.backupStorageUuid, 'backupStorageUuid');
  await ctx.services.zones[change](p.zoneUuid, p.backupStorageUuid);
  return { inventory: ctx.services.backupStorage.inventory(await ctx.services.backupStorage.require(p.backupStorageUuid)) };
}

/**
 * Zones: zimage has no compute, so a zone only groups backup storages (ZStack's BackupStorageZoneRefVO).
 * CreateZone, QueryZone, UpdateZone, ChangeZoneState, DeleteZone, AttachBackupStorageToZone, DetachBackupStorageFromZone.
 */
export const zoneApis = [
  defineApi({
    name: 'CreateZone',
    msgClass: `${MSG}.APICreateZoneMsg`,
    method: 'POST',
    path: '/zones',
    mode: 'async',
    resourceType: 'ZoneVO',
    summary: 'Creates a zone: in zimage a named group of backup storages, nothing more.',
    params: Type.Object({
      name: Type.String(ZONE_NAME),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      type: Type.Optional(Type.String({ validValues: ['zstack'] })),
      isDefault: Type.Optional(Type.Boolean()),
      resourceUuid: Type.Optional(Type.String()),
    }),
    async handler(ctx, p) {
      return { inventory: zoneInventory(await ctx.services.zones.create(p)) };
    },
  }),
  ...['/zones', '/zones/{uuid}'].map((path) =>
    defineApi({
      name: 'QueryZone',
      msgClass: `${MSG}.APIQueryZoneMsg`,
      method: 'GET',
      path,
      mode: 'sync',
      query: true,
      summary: "Lists zones with ZStack's query language.",
      params: path.endsWith('}') ? Type.Object({ uuid: Type.String() }) : Type.Object({}),
      async handler(ctx, p) {
        return ctx.services.zones.query(ctx.query, (p as { uuid?: string }).uuid);
      },
    }),
  ),
  defineApi({
    name: 'UpdateZone',
    msgClass: `${MSG}.APIUpdateZoneMsg`,
    method: 'PUT',
    path: '/zones/{uuid}/actions',
    actionKey: 'updateZone',
    mode: 'async',
    resourceType: 'ZoneVO',
    summary: 'Renames a zone, changes its description, or makes it the default zone.',
    params: Type.Object({
      uuid: Type.String(),
      name: Type.Optional(Type.String(ZONE_NAME)),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      isDefault: Type.Optional(Type.Boolean()),
    }),
    async handler(ctx, p) {
      return { inventory: zoneInventory(await ctx.services.zones.update(p.uuid, p)) };
    },
  }),
  defineApi({
    name: 'ChangeZoneState',
    msgClass: `${MSG}.APIChangeZoneStateMsg`,
    method: 'PUT',
    path: '/zones/{uuid}/actions',
    actionKey: 'changeZoneState',
    mode: 'async',
    resourceType: 'ZoneVO',
    summary: 'Enables or disables a zone (zimage records the state; it gates nothing, having no compute).',
    params: Type.Object({ uuid: Type.String(), stateEvent: Type.String({ validValues: ['enable', 'disable'] }) }),
    async handler(ctx, p) {
      return { inventory: zoneInventory(await ctx.services.zones.changeState(p.uuid, p.stateEvent as 'enable' | 'disable')) };
    },
  }),
  defineApi({
    name: 'DeleteZone',
    msgClass: `${MSG}.APIDeleteZoneMsg`,
    method: 'DELETE',
    path: '/zones/{uuid}',
    mode: 'async',
    summary: 'Deletes a zone; its backup storages are detached and stay.',
    params: Type.Object({ uuid: Type.String(), deleteMode: Type.Optional(Type.String({ validValues: ['Permissive', 'Enforcing'] })) }),
    async handler(ctx, p) {
      await ctx.services.zones.delete(p.uuid);
      return {};
    },
  }),
  defineApi({
    name: 'AttachBackupStorageToZone',
    msgClass: 'org.zstack.header.storage.backup.APIAttachBackupStorageToZoneMsg',
    method: 'POST',
    path: '/zones/{zoneUuid}/backup-storage/{backupStorageUuid}',
    mode: 'async',
    summary: 'Attaches a backup storage to a zone (twice is SYS.1006, as in ZStack).',
    params: ZONE_STORAGE_PARAMS,
    handler: (ctx, p) => changeZoneStorage(ctx, p, 'attachBackupStorage'),
  }),
  defineApi({
    name: 'DetachBackupStorageFromZone',
    msgClass: 'org.zstack.header.storage.backup.APIDetachBackupStorageFromZoneMsg',
    method: 'DELETE',
    path: '/zones/{zoneUuid}/backup-storage/{backupStorageUuid}',
    mode: 'async',
    summary: 'Detaches a backup storage from a zone (SYS.1006 when it is not attached).',
    params: ZONE_STORAGE_PARAMS,
    handler: (ctx, p) => changeZoneStorage(ctx, p, 'detachBackupStorage'),
  }),
];
