import { Type } from '@sinclair/typebox';
import { TAG_MAX_LENGTH } from '../../services/given-tags.js';
import { defineApi } from '../registry.js';

const MSG = 'org.zstack.header.tag';
const CREATE_PARAMS = Type.Object({
  resourceType: Type.String(),
  resourceUuid: Type.String(),
  tag: Type.String({ maxLength: TAG_MAX_LENGTH }),
});

/**
 * Tags as ZStack clients read and write them: CreateSystemTag, CreateUserTag, QuerySystemTag, QueryUserTag,
 * QueryTag, UpdateSystemTag, DeleteTag. Tags given with any other API call (bootMode::…, checksum::…) are
 * the same rows.
 */
export const tagApis = [
  defineApi({
    name: 'CreateSystemTag',
    msgClass: `${MSG}.APICreateSystemTagMsg`,
    method: 'POST',
    path: '/system-tags',
    mode: 'async',
    summary: 'Puts a system tag ZStack defines for the resource type (e.g. bootMode::UEFI on an ImageVO) on a resource.',
    params: CREATE_PARAMS,
    async handler(ctx, p) {
      return ctx.services.tags.createSystemTag(p);
    },
  }),
  defineApi({
    name: 'CreateUserTag',
    msgClass: `${MSG}.APICreateUserTagMsg`,
    method: 'POST',
    path: '/user-tags',
    mode: 'async',
    summary: 'Puts a free-text user tag on a resource.',
    params: CREATE_PARAMS,
    async handler(ctx, p) {
      return ctx.services.tags.createUserTag(p);
    },
  }),
  ...(
    [
      ['QuerySystemTag', 'APIQuerySystemTagMsg', '/system-tags', 'System'],
      ['QueryUserTag', 'APIQueryUserTagMsg', '/user-tags', 'User'],
      ['QueryTag', 'APIQueryTagMsg', '/tags', undefined],
    ] as const
  ).flatMap(([name, msg, base, kind]) =>
    [base, `${base}/{uuid}`].map((path) =>
      defineApi({
        name,
        msgClass: `${MSG}.${msg}`,
        method: 'GET',
        path,
        mode: 'sync',
        query: true,
        summary: kind
          ? `Lists ${kind.toLowerCase()} tags with ZStack's query language.`
          : "Lists system and user tags (TagInventory) with ZStack's query language.",
        params: path.endsWith('}') ? Type.Object({ uuid: Type.String() }) : Type.Object({}),
        async handler(ctx, p) {
          return ctx.services.tags.query(kind, ctx.query, (p as { uuid?: string }).uuid);
        },
      }),
    ),
  ),
  defineApi({
    name: 'UpdateSystemTag',
    msgClass: `${MSG}.APIUpdateSystemTagMsg`,
    method: 'PUT',
    path: '/system-tags/{uuid}/actions',
    actionKey: 'updateSystemTag',
    mode: 'async',
    summary: "Changes a system tag's text (it must remain a system tag of the resource's type).",
    params: Type.Object({ uuid: Type.String(), tag: Type.String({ maxLength: TAG_MAX_LENGTH }) }),
    async handler(ctx, p) {
      return ctx.services.tags.updateSystemTag(p.uuid, p.tag);
    },
  }),
  defineApi({
    name: 'DeleteTag',
    msgClass: `${MSG}.APIDeleteTagMsg`,
    method: 'DELETE',
    path: '/tags/{uuid}',
    mode: 'async',
    summary: 'Deletes a system or user tag; inherent system tags cannot be deleted (SYS.1006).',
    params: Type.Object({ uuid: Type.String(), deleteMode: Type.Optional(Type.String({ validValues: ['Permissive', 'Enforcing'] })) }),
    async handler(ctx, p) {
      await ctx.services.tags.delete(p.uuid);
      return {};
    },
  }),
];
