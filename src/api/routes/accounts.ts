import { Type } from '@sinclair/typebox';
import { defineApi } from '../registry.js';
import { sessionInventory } from '../../services/inventory.js';

const MSG = 'org.zstack.header.identity';

export const accountApis = [
  defineApi({
    name: 'LogInByAccount',
    msgClass: `${MSG}.APILogInByAccountMsg`,
    method: 'PUT',
    path: '/accounts/login',
    actionKey: 'logInByAccount',
    mode: 'sync',
    auth: false,
    summary: 'Log in; `password` is the SHA-512 hex of the plain password, as ZStack clients send it.',
    params: Type.Object({
      accountName: Type.String(),
      password: Type.String(),
      accountType: Type.Optional(Type.String()),
      captchaUuid: Type.Optional(Type.String()),
      verifyCode: Type.Optional(Type.String()),
      clientInfo: Type.Optional(Type.Object({})),
    }),
    async handler(ctx, p) {
      return { inventory: sessionInventory(await ctx.services.accounts.login(p.accountName, p.password, ctx.clientAddress)) };
    },
  }),
  defineApi({
    name: 'LogOut',
    msgClass: `${MSG}.APILogOutMsg`,
    method: 'DELETE',
    path: '/accounts/sessions/{sessionUuid}',
    mode: 'sync',
    auth: false,
    summary: 'Log out: the session ends at once.',
    params: Type.Object({ sessionUuid: Type.String() }),
    async handler(ctx, p) {
      await ctx.services.accounts.logout(p.sessionUuid);
      return {};
    },
  }),
  defineApi({
    name: 'ValidateSession',
    msgClass: `${MSG}.APIValidateSessionMsg`,
    method: 'GET',
    path: '/accounts/sessions/{sessionUuid}/valid',
    mode: 'sync',
    auth: false,
    summary: 'Tells whether a session is valid.',
    params: Type.Object({ sessionUuid: Type.String() }),
    async handler(ctx, p) {
      return { valid: await ctx.services.accounts.isValid(p.sessionUuid) };
    },
  }),
  defineApi({
    name: 'RenewSession',
    msgClass: `${MSG}.APIRenewSessionMsg`,
    method: 'PUT',
    path: '/accounts/sessions/{sessionUuid}/renew',
    actionKey: 'renewSession',
    mode: 'sync',
    auth: false,
    summary: 'Extends a session by `duration` seconds from now.',
    params: Type.Object({
      sessionUuid: Type.String(),
      duration: Type.Optional(Type.Integer({ minimum: 1, maximum: 31536000, default: 7200 })),
    }),
    async handler(ctx, p) {
      return { inventory: sessionInventory(await ctx.services.accounts.renew(p.sessionUuid, p.duration ?? 7200)) };
    },
  }),
];
