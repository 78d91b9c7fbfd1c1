import { Type } from '@sinclair/typebox';
import { defineApi } from '../registry.js';

const MSG = 'org.zstack.accessKey';

/** CreateAccessKey, QueryAccessKey, DeleteAccessKey, ChangeAccessKeyState (paths as in ZStack's SDK). */
export const accessKeyApis = [
  defineApi({
    name: 'CreateAccessKey',
    msgClass: `${MSG}.APICreateAccessKeyMsg`,
    method: 'POST',
    path: '/accesskeys',
    // Answered directly (200), never through a job: a job row would keep the reply, and so the secret, in the database.
    mode: 'sync',
    summary:
      'Creates an access key for an account (an account for itself, admin for any). The reply is the only one that shows AccessKeySecret; it is stored encrypted.',
    params: Type.Object({
      accountUuid: Type.String({ maxLength: 32 }),
      userUuid: Type.Optional(Type.String({ maxLength: 32 })),
      description: Type.Optional(Type.String({ maxLength: 2048 })),
      AccessKeyID: Type.Optional(Type.String({ minLength: 10, maxLength: 20 })),
      AccessKeySecret: Type.Optional(Type.String({ minLength: 10, maxLength: 40 })),
      resourceUuid: Type.Optional(Type.String()),
    }),
    async handler(ctx, p) {
      return { inventory: await ctx.services.accessKeys.create(ctx.session, p) };
    },
  }),
  ...['/accesskeys', '/accesskeys/{uuid}'].map((path) =>
    defineApi({
      name: 'QueryAccessKey',
      msgClass: `${MSG}.APIQueryAccessKeyMsg`,
      method: 'GET',
      path,
      mode: 'sync',
      query: true,
      summary: "Lists access keys (admin: all; an account: its own) with ZStack's query language; never the secret.",
      params: path.endsWith('}') ? Type.Object({ uuid: Type.String() }) : Type.Object({}),
      async handler(ctx, p) {
        return ctx.services.accessKeys.query(ctx.session, ctx.query, (p as { uuid?: string }).uuid);
      },
    }),
  ),
  defineApi({
    name: 'DeleteAccessKey',
    msgClass: `${MSG}.APIDeleteAccessKeyMsg`,
    method: 'DELETE',
    path: '/accesskeys/{uuid}',
    mode: 'async',
    summary: 'Deletes an access key; requests signed with it are refused from then on.',
    params: Type.Object({ uuid: Type.String(), deleteMode: Type.Optional(Type.String({ validValues: ['Permissive', 'Enforcing'] })) }),
    async handler(ctx, p) {
      await ctx.services.accessKeys.delete(ctx.session, p.uuid);
      return {};
    },
  }),
  defineApi({
    name: 'ChangeAccessKeyState',
    msgClass: `${MSG}.APIChangeAccessKeyStateMsg`,
    method: 'PUT',
    path: '/accesskeys/{uuid}/actions',
    actionKey: 'changeAccessKeyState',
    mode: 'async',
    summary: 'Enables or disables an access key; a disabled key signs nothing.',
    params: Type.Object({ uuid: Type.String(), stateEvent: Type.String({ validValues: ['enable', 'disable'] }) }),
    async handler(ctx, p) {
      return { inventory: await ctx.services.accessKeys.changeState(ctx.session, p.uuid, p.stateEvent as 'enable' | 'disable') };
    },
  }),
];
