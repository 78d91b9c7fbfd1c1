import { Type } from '@sinclair/typebox';
import { ARCHITECTURES, MEDIA_TYPES, PLATFORMS } from '../../services/image-constants.js';
import { BOOT_MODES } from '../../services/image-lifecycle.js';
import { defineApi } from '../registry.js';

const MSG = 'org.zstack.header.image';
const storages = Type.Optional(Type.Array(Type.String(), { minItems: 1 }));

/** DeleteImage, ExpungeImage, RecoverImage, ChangeImageState, UpdateImage, SetImageBootMode. */
export const imageLifecycleApis = [
  defineApi({
    name: 'DeleteImage',
    msgClass: `${MSG}.APIDeleteImageMsg`,
    method: 'DELETE',
    path: '/images/{uuid}',
    mode: 'async',
    summary:
      'Deletes an image (or its copies on `backupStorageUuids`; storages without a copy are skipped) under the configured policy: Direct removes the bytes now, Delay (default) marks it Deleted until the expunger runs, Never keeps the bytes. ' +
      'An image still being added is removed at once, bytes and all, and its AddImage fails (SYS.1006 "has been deleted"); a pending upload is dropped.',
    params: Type.Object({
      uuid: Type.String(),
      backupStorageUuids: storages,
      deleteMode: Type.Optional(Type.String({ validValues: ['Permissive', 'Enforcing'] })),
    }),
    async handler(ctx, p) {
      await ctx.services.lifecycle.delete(p.uuid, ctx.services.lifecycle.defaultPolicy, p.backupStorageUuids);
      return {};
    },
  }),
  defineApi({
    name: 'ExpungeImage',
    msgClass: `${MSG}.APIExpungeImageMsg`,
    method: 'PUT',
    path: '/images/{imageUuid}/actions',
    actionKey: 'expungeImage',
    mode: 'async',
    summary: 'Removes Deleted copies for good (their bytes too, except copies deleted under the Never policy).',
    params: Type.Object({ imageUuid: Type.String(), backupStorageUuids: storages }),
    async handler(ctx, p) {
      await ctx.services.lifecycle.expunge(p.imageUuid, p.backupStorageUuids);
      return {};
    },
  }),
  defineApi({
    name: 'RecoverImage',
    msgClass: `${MSG}.APIRecoverImageMsg`,
    method: 'PUT',
    path: '/images/{imageUuid}/actions',
    actionKey: 'recoverImage',
    mode: 'async',
    resourceType: 'ImageVO',
    summary: 'Brings Deleted copies back to Ready.',
    params: Type.Object({ imageUuid: Type.String(), backupStorageUuids: storages }),
    async handler(ctx, p) {
      return ctx.services.lifecycle.recover(p.imageUuid, p.backupStorageUuids);
    },
  }),
  defineApi({
    name: 'ChangeImageState',
    msgClass: `${MSG}.APIChangeImageStateMsg`,
    method: 'PUT',
    path: '/images/{uuid}/actions',
    actionKey: 'changeImageState',
    mode: 'async',
    resourceType: 'ImageVO',
    summary: 'Enables or disables an image.',
    params: Type.Object({ uuid: Type.String(), stateEvent: Type.String({ validValues: ['enable', 'disable'] }) }),
    async handler(ctx, p) {
      return ctx.services.lifecycle.changeState(p.uuid, p.stateEvent as 'enable' | 'disable');
    },
  }),
  defineApi({
    name: 'UpdateImage',
    msgClass: `${MSG}.APIUpdateImageMsg`,
    method: 'PUT',
    path: '/images/{uuid}/actions',
    actionKey: 'updateImage',
    mode: 'async',
    resourceType: 'ImageVO',
    summary: "Changes an image's descriptive fields.",
    params: Type.Object({
      uuid: Type.String(),
      name: Type.Optional(Type.String({ maxLength: 255 })),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      guestOsType: Type.Optional(Type.String({ maxLength: 255 })),
      mediaType: Type.Optional(Type.String({ validValues: [...MEDIA_TYPES] })),
      format: Type.Optional(Type.String({ validValues: ['raw', 'qcow2', 'iso'] })),
      system: Type.Optional(Type.Boolean()),
      platform: Type.Optional(Type.String({ validValues: [...PLATFORMS] })),
      architecture: Type.Optional(Type.String({ validValues: [...ARCHITECTURES] })),
      virtio: Type.Optional(Type.Boolean()),
    }),
    async handler(ctx, p) {
      const { uuid, ...changes } = p;
      return ctx.services.lifecycle.update(uuid, changes);
    },
  }),
  defineApi({
    name: 'SetImageBootMode',
    msgClass: `${MSG}.APISetImageBootModeMsg`,
    method: 'PUT',
    path: '/images/{uuid}/actions',
    actionKey: 'setImageBootMode',
    mode: 'async',
    resourceType: 'ImageVO',
    summary: 'Sets the boot mode (kept as the system tag bootMode::<mode>).',
    params: Type.Object({ uuid: Type.String(), bootMode: Type.String({ validValues: [...BOOT_MODES] }) }),
    async handler(ctx, p) {
      await ctx.services.lifecycle.setBootMode(p.uuid, p.bootMode);
      return {};
    },
  }),
];
