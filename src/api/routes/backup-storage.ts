import { Type } from '@sinclair/typebox';
import { isAbsolute, normalize } from 'node:path';
import { ZStackError } from '../../lib/errors.js';
import { BACKUP_STORAGE_TYPES } from '../../services/backup-storage.js';
import { defineApi, type ApiDef } from '../registry.js';

const MSG = 'org.zstack.header.storage.backup';
const QUERY_PARAMS = Type.Object({});

/** The fields every Add<Type>BackupStorage message inherits from ZStack's APIAddBackupStorageMsg (besides name and url). */
export const ADD_BACKUP_STORAGE_FIELDS = {
  description: Type.Optional(Type.String({ maxLength: 2048 })),
  type: Type.Optional(Type.String()),
  importImages: Type.Optional(Type.Boolean()),
  resourceUuid: Type.Optional(Type.String()),
};

/**
 * Query<Type>BackupStorage on /backup-storage/<segment> and /backup-storage/<segment>/{uuid}: the generic
 * backup-storage query restricted to one type.
 */
export function typedQueryApis(o: { name: string; msgClass: string; segment: string; type: string; label: string }): ApiDef[] {
  return [
    defineApi({
      name: o.name,
      msgClass: o.msgClass,
      method: 'GET',
      path: `/backup-storage/${o.segment}`,
      mode: 'sync',
      query: true,
      summary: `Lists ${o.label} backup storage, with ZStack's query language.`,
      params: Type.Object({}),
      async handler(ctx) {
        return ctx.services.backupStorage.query(ctx.query, undefined, o.type);
      },
    }),
    defineApi({
      name: o.name,
      msgClass: o.msgClass,
      method: 'GET',
      path: `/backup-storage/${o.segment}/{uuid}`,
      mode: 'sync',
      query: true,
      summary: `One ${o.label} backup storage, as a list (empty when unknown or of another type).`,
      params: Type.Object({ uuid: Type.String() }),
      async handler(ctx, p) {
        return ctx.services.backupStorage.query(ctx.query, p.uuid, o.type);
      },
    }),
  ];
}

export const backupStorageApis = [
  ...typedQueryApis({
    name: 'QueryLocalBackupStorage',
    msgClass: 'org.zstack.zimage.APIQueryLocalBackupStorageMsg',
    segment: 'local',
    type: 'LocalBackupStorage',
    label: 'local-directory',
  }),
  defineApi({
    name: 'AddLocalBackupStorage',
    msgClass: 'org.zstack.zimage.APIAddLocalBackupStorageMsg',
    method: 'POST',
    path: '/backup-storage/local',
    mode: 'async',
    resourceType: 'BackupStorageVO',
    summary: 'Adds a directory on the zimage host as backup storage (zimage type LocalBackupStorage).',
    params: Type.Object({
      name: Type.String({ maxLength: 255 }),
      url: Type.String({ maxLength: 2048 }),
      ...ADD_BACKUP_STORAGE_FIELDS,
    }),
    async handler(ctx, p) {
      if (!isAbsolute(p.url)) {
        throw new ZStackError('SYS.1007', `url[${p.url}] must be an absolute directory path, e.g. /var/lib/zimage/images`);
      }
      const url = normalize(p.url).replace(/(.)\/+$/, '$1');
      return {
        inventory: await ctx.services.backupStorage.add({
          type: 'LocalBackupStorage',
          name: p.name,
          url,
          description: p.description,
          resourceUuid: p.resourceUuid,
        }),
      };
    },
  }),
  defineApi({
    name: 'QueryBackupStorage',
    msgClass: `${MSG}.APIQueryBackupStorageMsg`,
    method: 'GET',
    path: '/backup-storage',
    mode: 'sync',
    query: true,
    summary: "Lists backup storage of every type, with ZStack's query language.",
    params: QUERY_PARAMS,
    async handler(ctx) {
      return ctx.services.backupStorage.query(ctx.query);
    },
  }),
  defineApi({
    name: 'QueryBackupStorage',
    msgClass: `${MSG}.APIQueryBackupStorageMsg`,
    method: 'GET',
    path: '/backup-storage/{uuid}',
    mode: 'sync',
    query: true,
    summary: 'One backup storage, as a list (empty when unknown).',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      return ctx.services.backupStorage.query(ctx.query, p.uuid);
    },
  }),
  defineApi({
    name: 'DeleteBackupStorage',
    msgClass: `${MSG}.APIDeleteBackupStorageMsg`,
    method: 'DELETE',
    path: '/backup-storage/{uuid}',
    mode: 'async',
    summary: 'Deletes a backup storage; refused while image copies live on it.',
    params: Type.Object({ uuid: Type.String(), deleteMode: Type.Optional(Type.String({ validValues: ['Permissive', 'Enforcing'] })) }),
    async handler(ctx, p) {
      await ctx.services.backupStorage.delete(p.uuid);
      return {};
    },
  }),
  defineApi({
    name: 'ReconnectBackupStorage',
    msgClass: `${MSG}.APIReconnectBackupStorageMsg`,
    method: 'PUT',
    path: '/backup-storage/{uuid}/actions',
    actionKey: 'reconnectBackupStorage',
    mode: 'async',
    resourceType: 'BackupStorageVO',
    summary: 'Connects again and refreshes status and capacity.',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      const row = await ctx.services.backupStorage.reconnect((await ctx.services.backupStorage.require(p.uuid)).uuid);
      if (row.status !== 'Connected') {
        // BackupStorageBase passes the connect error on unchanged (an operr).
        throw new ZStackError(
          'SYS.1006',
          `cannot connect backup storage[uuid:${row.uuid}, name:${row.name}]: ${row.status_reason ?? 'unknown reason'}`,
        );
      }
      return { inventory: ctx.services.backupStorage.inventory(row) };
    },
  }),
  defineApi({
    name: 'UpdateBackupStorage',
    msgClass: `${MSG}.APIUpdateBackupStorageMsg`,
    method: 'PUT',
    path: '/backup-storage/{uuid}/actions',
    actionKey: 'updateBackupStorage',
    mode: 'async',
    resourceType: 'BackupStorageVO',
    summary: 'Renames a backup storage or changes its description.',
    params: Type.Object({
      uuid: Type.String(),
      name: Type.Optional(Type.String({ maxLength: 255 })),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
    }),
    async handler(ctx, p) {
      return {
        inventory: ctx.services.backupStorage.inventory(
          await ctx.services.backupStorage.update(p.uuid, { name: p.name, description: p.description }),
        ),
      };
    },
  }),
  defineApi({
    name: 'ChangeBackupStorageState',
    msgClass: `${MSG}.APIChangeBackupStorageStateMsg`,
    method: 'PUT',
    path: '/backup-storage/{uuid}/actions',
    actionKey: 'changeBackupStorageState',
    mode: 'async',
    resourceType: 'BackupStorageVO',
    summary: 'Enables or disables a backup storage; a disabled one takes no new images.',
    params: Type.Object({ uuid: Type.String(), stateEvent: Type.String({ validValues: ['enable', 'disable'] }) }),
    async handler(ctx, p) {
      return {
        inventory: ctx.services.backupStorage.inventory(
          await ctx.services.backupStorage.changeState(p.uuid, p.stateEvent === 'enable' ? 'Enabled' : 'Disabled'),
        ),
      };
    },
  }),
  defineApi({
    name: 'GetBackupStorageCapacity',
    msgClass: `${MSG}.APIGetBackupStorageCapacityMsg`,
    method: 'GET',
    path: '/backup-storage/capacities',
    mode: 'sync',
    summary:
      'Total and available capacity of the named backup storages, else of those attached to the named zones, else of all with all=true; one of them is required.',
    params: Type.Object({
      zoneUuids: Type.Optional(Type.Array(Type.String())),
      backupStorageUuids: Type.Optional(Type.Array(Type.String())),
      all: Type.Optional(Type.Boolean()),
    }),
    async handler(ctx, p) {
      const named = p.backupStorageUuids ?? [];
      const zones = p.zoneUuids ?? [];
      await ctx.services.zones.requireAll(zones, 'zoneUuids');
      await ctx.services.backupStorage.requireAll(named, 'backupStorageUuids');
      if (!named.length && !zones.length && !p.all) {
        throw new ZStackError('SYS.1007', 'zoneUuids, backupStorageUuids must have at least one be none-empty list, or all is set to true');
      }
      // BackupStorageApiInterceptor and BackupStorageManagerImpl: named storages first, then `all`, then zones.
      if (named.length) return ctx.services.backupStorage.capacity(named);
      if (p.all) return ctx.services.backupStorage.capacity(undefined);
      return ctx.services.backupStorage.capacity(await ctx.services.zones.backupStorageUuidsIn(zones));
    },
  }),
  defineApi({
    name: 'GetBackupStorageTypes',
    msgClass: `${MSG}.APIGetBackupStorageTypesMsg`,
    method: 'GET',
    path: '/backup-storage/types',
    mode: 'sync',
    summary: 'The backup storage types this zimage supports.',
    params: Type.Object({}),
    handler() {
      return Promise.resolve({ types: BACKUP_STORAGE_TYPES });
    },
  }),
];
