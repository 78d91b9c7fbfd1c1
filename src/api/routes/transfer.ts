import { Type } from '@sinclair/typebox';
import { defineApi, type ApiDef } from '../registry.js';

const IMG = 'org.zstack.header.image';
const BS = 'org.zstack.header.storage.backup';

/**
 * Upload (AddImage with upload://, GetUploadImageJobDetails) and export of images. The bytes themselves go
 * through the data plane (src/api/data-plane.ts), not through these APIs.
 */
export const transferApis: ApiDef[] = [
  defineApi({
    name: 'GetUploadImageJobDetails',
    msgClass: `${IMG}.APIGetUploadImageJobDetailsMsg`,
    method: 'GET',
    path: '/images/upload-job/details/{imageId}',
    mode: 'sync',
    summary:
      'The upload of an image added with an upload:// url: its job, state (Waiting, Running, Succeeded, Failed), upload URL and the bytes received so far (the offset to resume from). Empty when the image has no upload recorded in the database (begun on any node).',
    params: Type.Object({ imageId: Type.String() }),
    async handler(ctx, p) {
      return { existingJobDetails: await ctx.services.uploads.jobDetails(p.imageId) };
    },
  }),
  defineApi({
    name: 'ExportImageFromBackupStorage',
    msgClass: `${BS}.APIExportImageFromBackupStorageMsg`,
    method: 'PUT',
    path: '/backup-storage/{backupStorageUuid}/actions',
    actionKey: 'exportImageFromBackupStorage',
    mode: 'async',
    heavy: true,
    timeoutMs: 3 * 3600 * 1000,
    summary:
      "Publishes a Ready copy at an unguessable URL served by zimage itself (GET with Range, HEAD; ETag = MD5). exportMd5Sum is the copy's recorded MD5, or computed from the stored bytes. No format conversion: exportFormat must be the image's own format.",
    params: Type.Object({
      backupStorageUuid: Type.String(),
      imageUuid: Type.String(),
      exportFormat: Type.Optional(Type.String({ validValues: ['raw', 'qcow2'] })),
    }),
    async handler(ctx, p) {
      return ctx.services.imageExport.export(p.backupStorageUuid, p.imageUuid, p.exportFormat, ctx);
    },
  }),
  defineApi({
    name: 'DeleteExportedImageFromBackupStorage',
    msgClass: `${BS}.APIDeleteExportedImageFromBackupStorageMsg`,
    method: 'DELETE',
    path: '/backup-storage/{backupStorageUuid}/exported-images/{imageUuid}',
    mode: 'async',
    summary:
      'Withdraws the export link of the copy on that storage: the URL answers 404 from now on; exportUrl and exportMd5Sum are cleared.',
    params: Type.Object({ backupStorageUuid: Type.String(), imageUuid: Type.String() }),
    async handler(ctx, p) {
      return ctx.services.imageExport.deleteExport(p.backupStorageUuid, p.imageUuid);
    },
  }),
];
