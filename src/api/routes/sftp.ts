import { Type } from '@sinclair/typebox';
import { ZStackError } from '../../lib/errors.js';
import type { Services } from '../../services/index.js';
import { checkFingerprint, checkHostname, checkPrivateKey, remoteDirectory } from '../../services/sftp-settings.js';
import { defineApi, type ApiDef } from '../registry.js';
import { ADD_BACKUP_STORAGE_FIELDS, typedQueryApis } from './backup-storage.js';

const TYPE = 'SftpBackupStorage';
const PKG = 'org.zstack.storage.backup.sftp';
const ADD_MSG = `${PKG}.APIAddSftpBackupStorageMsg`;
const UPDATE_MSG = `${PKG}.APIUpdateSftpBackupStorageMsg`;

function nonEmpty(field: string, value: string | undefined): void {
  if (value !== undefined && value.trim() === '') throw new ZStackError('SYS.1007', `field[${field}] cannot be an empty string`);
}

/** The row of an SFTP storage, or SYS.1003 naming SftpBackupStorageVO (as ZStack's validator does). */
async function requireSftp(services: Services, uuid: string) {
  const row = await services.backupStorage.get(uuid);
  if (!row || row.type !== TYPE)
    throw new ZStackError('SYS.1003', `invalid field[uuid], resource[uuid:${uuid}, type:SftpBackupStorageVO] not found`);
  return row;
}

export const sftpApis: ApiDef[] = [
  defineApi({
    name: 'AddSftpBackupStorage',
    msgClass: ADD_MSG,
    method: 'POST',
    path: '/backup-storage/sftp',
    mode: 'async',
    summary:
      'Adds a directory on a remote Linux host, reached over SSH, as backup storage. zimage extension: `privateKey` (PEM) instead of a password, ' +
      'and `hostKeyFingerprint` to pin the host key up front (else it is recorded on first connect and checked afterwards).',
    params: Type.Object({
      name: Type.String({ maxLength: 255 }),
      hostname: Type.String({ maxLength: 255 }),
      username: Type.String({ maxLength: 255 }),
      password: Type.Optional(Type.String({ maxLength: 255 })),
      privateKey: Type.Optional(Type.String({ maxLength: 16384, multiline: true })),
      hostKeyFingerprint: Type.Optional(Type.String({ maxLength: 100 })),
      sshPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 22 })),
      url: Type.String({ maxLength: 2048 }),
      ...ADD_BACKUP_STORAGE_FIELDS,
    }),
    async handler(ctx, p) {
      nonEmpty('hostname', p.hostname);
      nonEmpty('username', p.username);
      if ((p.password === undefined || p.password === '') && (p.privateKey === undefined || p.privateKey === '')) {
        throw new ZStackError('SYS.1007', `field[password] of message[${ADD_MSG}] is mandatory, can not be null`);
      }
      checkPrivateKey(p.privateKey);
      checkFingerprint(p.hostKeyFingerprint);
      checkHostname(p.hostname);
      if (p.url.startsWith('/proc') || p.url.startsWith('/dev') || p.url.startsWith('/sys')) {
        throw new ZStackError('SYS.1007', ' the url contains an invalid folder[/dev or /proc or /sys]');
      }
      const url = remoteDirectory(p.url);
      const hostname = p.hostname;
      const sshPort = p.sshPort ?? 22;
      // SftpBackupStorageApiInterceptor: one SFTP storage per hostname.
      const existing = (await ctx.services.backupStorage.query({}, undefined, TYPE)).inventories as Array<Record<string, unknown>>;
      if (existing.some((b) => b.hostname === hostname)) {
        throw new ZStackError('SYS.1006', `duplicate backup storage. There has been a sftp backup storage[hostname:${hostname}] existing`);
      }
      const config: Record<string, unknown> = { hostname, username: p.username, sshPort };
      if (p.password) config.password = p.password;
      if (p.privateKey) config.privateKey = p.privateKey;
      if (p.hostKeyFingerprint) config.hostKeyFingerprint = p.hostKeyFingerprint;
      return {
        inventory: await ctx.services.backupStorage.add({
          type: TYPE,
          name: p.name,
          url,
          description: p.description,
          resourceUuid: p.resourceUuid,
          config,
        }),
      };
    },
  }),
  ...typedQueryApis({
    name: 'QuerySftpBackupStorage',
    msgClass: `${PKG}.APIQuerySftpBackupStorageMsg`,
    segment: 'sftp',
    type: TYPE,
    label: 'SFTP',
  }),
  defineApi({
    name: 'ReconnectSftpBackupStorage',
    msgClass: `${PKG}.APIReconnectSftpBackupStorageMsg`,
    method: 'PUT',
    path: '/backup-storage/sftp/{uuid}/actions',
    actionKey: 'reconnectSftpBackupStorage',
    mode: 'async',
    summary: 'Connects to the SFTP host again (host key, login, directory, tools) and refreshes status and capacity.',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      const current = await requireSftp(ctx.services, p.uuid);
      const row = await ctx.services.backupStorage.reconnect(current.uuid);
      if (row.status !== 'Connected') {
        // SftpBackupStorage: RECONNECT_ERROR caused by the connect error (an operr), with its text.
        const details = `cannot reconnect sftp backup storage[uuid:${row.uuid}, name:${row.name}]: ${row.status_reason ?? 'unknown reason'}`;
        throw new ZStackError('BS.SFTP.1000', details, new ZStackError('SYS.1006', details));
      }
      return { inventory: ctx.services.backupStorage.inventory(await ctx.services.backupStorage.require(row.uuid)) };
    },
  }),
  defineApi({
    name: 'UpdateSftpBackupStorage',
    msgClass: UPDATE_MSG,
    method: 'PUT',
    path: '/backup-storage/sftp/{uuid}/actions',
    actionKey: 'updateSftpBackupStorage',
    mode: 'async',
    summary:
      'Changes name, description, login (username, password or privateKey) or address (hostname, sshPort) of an SFTP backup storage, then ' +
      'connects again. A new hostname or sshPort forgets the recorded host key; `resetHostKey: true` or `hostKeyFingerprint` accepts a changed one.',
    params: Type.Object({
      uuid: Type.String(),
      name: Type.Optional(Type.String({ maxLength: 255 })),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      username: Type.Optional(Type.String({ maxLength: 255 })),
      password: Type.Optional(Type.String({ maxLength: 255 })),
      privateKey: Type.Optional(Type.String({ maxLength: 16384, multiline: true })),
      hostname: Type.Optional(Type.String({ maxLength: 255 })),
      sshPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      hostKeyFingerprint: Type.Optional(Type.String({ maxLength: 100 })),
      resetHostKey: Type.Optional(Type.Boolean()),
    }),
    async handler(ctx, p) {
      const row = await requireSftp(ctx.services, p.uuid);
      nonEmpty('name', p.name);
      nonEmpty('hostname', p.hostname);
      nonEmpty('username', p.username);
      checkPrivateKey(p.privateKey);
      checkFingerprint(p.hostKeyFingerprint);
      checkHostname(p.hostname);
      const old = ctx.services.backupStorage.configOf(row);
      const patch: Record<string, unknown> = {};
      if (p.username !== undefined) patch.username = p.username;
      // An empty password or privateKey removes it (to switch from one to the other).
      if (p.password !== undefined) patch.password = p.password === '' ? null : p.password;
      if (p.privateKey !== undefined) patch.privateKey = p.privateKey === '' ? null : p.privateKey;
      const hostname = p.hostname?.trim();
      if (hostname !== undefined) patch.hostname = hostname;
      if (p.sshPort !== undefined) patch.sshPort = p.sshPort;
      const moved =
        (hostname !== undefined && hostname !== old.hostname) || (p.sshPort !== undefined && p.sshPort !== Number(old.sshPort ?? 22));
      if (moved || p.resetHostKey) patch.hostKeyFingerprint = null;
      if (p.hostKeyFingerprint !== undefined) patch.hostKeyFingerprint = p.hostKeyFingerprint;
      const next = { ...old, ...patch };
      if (!next.password && !next.privateKey) {
        throw new ZStackError(
          'SYS.1007',
          `field[password] of message[${UPDATE_MSG}] cannot be removed while no privateKey is set; the storage needs one of them`,
        );
      }
      await ctx.services.backupStorage.update(row.uuid, {
        ...(p.name !== undefined ? { name: p.name } : {}),
        ...(p.description !== undefined ? { description: p.description } : {}),
        config: patch,
      });
      // The new settings are tried at once; the outcome shows in status/statusReason. The row is read
      // again because connecting may have recorded a host key.
      await ctx.services.backupStorage.reconnect(row.uuid);
      return { inventory: ctx.services.backupStorage.inventory(await ctx.services.backupStorage.require(row.uuid)) };
    },
  }),
];
