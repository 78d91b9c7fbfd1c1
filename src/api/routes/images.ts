import { Type } from '@sinclair/typebox';
import { DIGEST_ALGORITHMS, type DigestAlgorithm } from '../../hashing/algorithms.js';
import { ARCHITECTURES, MEDIA_TYPES, PLATFORMS } from '../../services/image-constants.js';
import { ZStackError } from '../../lib/errors.js';
import { defineApi } from '../registry.js';

const MSG = 'org.zstack.header.image';

export const imageApis = [
  defineApi({
    name: 'AddImage',
    msgClass: `${MSG}.APIAddImageMsg`,
    method: 'POST',
    path: '/images',
    mode: 'async',
    heavy: true,
    timeoutMs: 72 * 3600 * 1000,
    summary:
      'Adds an image from an http(s):// or file:/// url into backup storage. The bytes are copied once, MD5 and SHA-256 are computed in the same pass, the format is detected and safety-checked, sizes are measured.',
    params: Type.Object({
      name: Type.String({ maxLength: 255 }),
      url: Type.String({ maxLength: 1024 }),
      format: Type.Optional(Type.String()),
      mediaType: Type.Optional(Type.String({ validValues: [...MEDIA_TYPES] })),
      platform: Type.Optional(Type.String({ validValues: [...PLATFORMS] })),
      architecture: Type.Optional(Type.String({ validValues: [...ARCHITECTURES] })),
      guestOsType: Type.Optional(Type.String({ maxLength: 255 })),
      system: Type.Optional(Type.Boolean()),
      virtio: Type.Optional(Type.Boolean()),
      backupStorageUuids: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
      type: Type.Optional(Type.String()),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      resourceUuid: Type.Optional(Type.String()),
    }),
    async handler(ctx, p) {
      return ctx.services.imageAdder.add(p, ctx);
    },
  }),
  defineApi({
    name: 'QueryImage',
    msgClass: `${MSG}.APIQueryImageMsg`,
    method: 'GET',
    path: '/images',
    mode: 'sync',
    query: true,
    summary: "Lists images with ZStack's query language (q, limit, start, count, replyWithCount, sort, fields).",
    params: Type.Object({}),
    async handler(ctx) {
      return ctx.services.images.query(ctx.query);
    },
  }),
  defineApi({
    name: 'QueryImage',
    msgClass: `${MSG}.APIQueryImageMsg`,
    method: 'GET',
    path: '/images/{uuid}',
    mode: 'sync',
    query: true,
    summary: 'One image, as a list (empty when unknown).',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      return ctx.services.images.query(ctx.query, p.uuid);
    },
  }),
  defineApi({
    name: 'SyncImageSize',
    msgClass: `${MSG}.APISyncImageSizeMsg`,
    method: 'PUT',
    path: '/images/{uuid}/actions',
    actionKey: 'syncImageSize',
    defaultAction: true,
    mode: 'async',
    resourceType: 'ImageVO',
    summary:
      'Measures every Ready copy on a Connected storage: size = virtual size from the format header, actualSize = allocated bytes. Copies that disagree are an error.',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      return ctx.services.measurer.syncSize(p.uuid, ctx);
    },
  }),
  defineApi({
    name: 'CalculateImageHash',
    msgClass: `${MSG}.APICalculateImageHashMsg`,
    method: 'PUT',
    path: '/images/{uuid}/actions',
    actionKey: 'calculateImageHash',
    mode: 'async',
    resourceType: 'ImageVO',
    heavy: 'shared', // identical calls share one read, which takes the slot (services/hash-flights.ts)
    summary: 'Reads every byte of the copy on the named storage and digests it; the hex digest goes to md5Sum.',
    params: Type.Object({
      uuid: Type.String(),
      backupStorageUuid: Type.String(),
      algorithm: Type.Optional(Type.String({ validValues: [...DIGEST_ALGORITHMS], ignoreCase: true, default: 'MD5' })),
    }),
    async handler(ctx, p) {
      return ctx.services.measurer.calculateHash(p.uuid, p.backupStorageUuid, (p.algorithm ?? 'MD5') as DigestAlgorithm, ctx);
    },
  }),
  defineApi({
    name: 'GetImageDigests',
    msgClass: 'org.zstack.zimage.APIGetImageDigestsMsg',
    method: 'GET',
    path: '/images/{uuid}/digests',
    mode: 'sync',
    summary: 'zimage extension: every digest recorded for the image, per backup storage and algorithm.',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      await ctx.services.images.require(p.uuid);
      const rows = await ctx.services.digests.forImage(p.uuid);
      return {
        inventories: rows.map((d) => ({
          imageUuid: d.image_uuid,
          backupStorageUuid: d.backup_storage_uuid,
          algorithm: d.algorithm,
          digest: d.digest,
          source: d.source,
          createDate: new Date(d.create_date).toISOString(),
        })),
      };
    },
  }),
  defineApi({
    name: 'GetCandidateBackupStorageForCreatingImage',
    msgClass: `${MSG}.APIGetCandidateBackupStorageForCreatingImageMsg`,
    method: 'GET',
    path: '/images/candidate-backup-storage',
    mode: 'sync',
    summary: 'Backup storages that can take a new image now: Enabled, Connected, with available capacity.',
    params: Type.Object({}),
    async handler(ctx) {
      return ctx.services.backupStorage.query({ q: ['state=Enabled', 'status=Connected', 'availableCapacity>0'] });
    },
  }),
  ...[
    '/images/volumes/{volumeUuid}/candidate-backup-storage',
    '/images/volume-snapshots/{volumeSnapshotUuid}/candidate-backup-storage',
  ].map((path) =>
    defineApi({
      name: 'GetCandidateBackupStorageForCreatingImage',
      msgClass: `${MSG}.APIGetCandidateBackupStorageForCreatingImageMsg`,
      method: 'GET',
      path,
      mode: 'sync',
      summary: 'Not applicable: zimage keeps images only and manages no volumes or snapshots (answers SYS.1014).',
      params: Type.Object({}),
      handler() {
        return Promise.reject(
          new ZStackError(
            'SYS.1014',
            'zimage manages images only; creating an image from a volume or a snapshot is done by the compute side',
          ),
        );
      },
    }),
  ),
];
