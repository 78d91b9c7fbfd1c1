import { Type } from '@sinclair/typebox';
import { cephSettings } from '../../services/ceph-settings.js';
import { defineApi, type ApiDef } from '../registry.js';
import { ADD_BACKUP_STORAGE_FIELDS, typedQueryApis } from './backup-storage.js';

const MSG = 'org.zstack.storage.ceph.backup';
const CEPH_TYPE = 'Ceph';

/** APIs specific to Ceph backup storage. */
export const cephApis: ApiDef[] = [
  defineApi({
    name: 'AddCephBackupStorage',
    msgClass: `${MSG}.APIAddCephBackupStorageMsg`,
    method: 'POST',
    path: '/backup-storage/ceph',
    mode: 'async',
    summary:
      'Adds a Ceph pool as backup storage: images are RBD images in it (installPath ceph://<pool>/<imageUuid>). ' +
      "monUrls takes host, host:port or ZStack's user:password@host[:port] (only the host part is used). With auth none, monUrls and poolName are enough. " +
      'zimage extras for cephx (never returned): cephUser (default admin) and cephKey (base64 secret), or cephConf and keyring (absolute paths on the zimage host); ' +
      'timeoutSeconds (default 30): how long the cluster may stay silent before an operation fails. importImages is accepted and ignored.',
    params: Type.Object({
      monUrls: Type.Array(Type.String({ maxLength: 255 }), { minItems: 1 }),
      poolName: Type.String({ maxLength: 128 }),
      url: Type.Optional(Type.String({ maxLength: 2048 })),
      name: Type.String({ maxLength: 255 }),
      ...ADD_BACKUP_STORAGE_FIELDS,
      cephUser: Type.Optional(Type.String({ maxLength: 128 })),
      cephKey: Type.Optional(Type.String({ maxLength: 256 })),
      cephConf: Type.Optional(Type.String({ maxLength: 1024 })),
      keyring: Type.Optional(Type.String({ maxLength: 1024 })),
      timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    }),
    async handler(ctx, p) {
      const config = cephSettings(p);
      return {
        inventory: await ctx.services.backupStorage.add({
          type: CEPH_TYPE,
          name: p.name,
          url: p.url ?? `ceph://${p.poolName}`,
          description: p.description,
          resourceUuid: p.resourceUuid,
          config,
        }),
      };
    },
  }),
  ...typedQueryApis({
    name: 'QueryCephBackupStorage',
    msgClass: `${MSG}.APIQueryCephBackupStorageMsg`,
    segment: 'ceph',
    type: CEPH_TYPE,
    label: 'Ceph',
  }),
];
