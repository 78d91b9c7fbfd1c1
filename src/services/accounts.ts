import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { DEFAULT_ADMIN_PASSWORD } from '../config.js';
import type { Db } from '../db/connect.js';
import type { SessionTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import { LoginThrottle } from './login-throttle.js';
import { hashPassword, verifyPassword } from './passwords.js';

/** ZStack's built-in admin account uuid. */
export const ADMIN_UUID = '36c27e8ff05c4780bf6d2fa65700f22e';
export const SESSION_TIMEOUT_MS = 7200 * 1000;
export const MAX_SESSIONS_PER_USER = 500;

/** The wire form of a plain password: lower-case hex SHA-512, as ZStack's CLI and SDKs send it. */
export const wirePassword = (plain: string): string => createHash('sha512').update(plain).digest('hex');

export class AccountService {
  constructor(
    private readonly db: Db,
    private readonly log?: Logger,
    readonly throttle: LoginThrottle = new LoginThrottle(),
  ) {}

  /** Creates `admin` on first start; applies `initialPassword` while admin still has the default one. */
  async ensureAdmin(initialPassword?: string): Promise<void> {
    const now = Date.now();
    const admin = await this.db.selectFrom('account').selectAll().where('uuid', '=', ADMIN_UUID).executeTakeFirst();
    if (!admin) {
      await this.db
        .insertInto('account')
        .values({
          uuid: ADMIN_UUID,
          name: 'admin',
          password_hash: await hashPassword(wirePassword(initialPassword ?? DEFAULT_ADMIN_PASSWORD)),
          create_date: now,
          last_op_date: now,
        })
        .execute();
      return;
    }
    if (initialPassword && initialPassword !== DEFAULT_ADMIN_PASSWORD && (await this.adminHasDefaultPassword())) {
      await this.db
        .updateTable('account')
        .set({ password_hash: await hashPassword(wirePassword(initialPassword)), last_op_date: now })
        .where('uuid', '=', ADMIN_UUID)
        .execute();
    }
  }

  async adminHasDefaultPassword(): Promise<boolean> {
    const admin = await this.db.selectFrom('account').select('password_hash').where('uuid', '=', ADMIN_UUID).executeTakeFirst();
    return admin !== undefined && (await verifyPassword(wirePassword(DEFAULT_ADMIN_PASSWORD), admin.password_hash));
  }

  /**
   * LogInByAccount: `password` is the wire form (SHA-512 hex); `clientAddress` is the caller as the API layer
   * sees it. Throttled (see LoginThrottle); every failure is logged with the account name and address.
   */
  async login(accountName: string, password: string, clientAddress = 'unknown'): Promise<SessionTable> {
    const who = { account: accountName.length > 256 ? `${accountName.slice(0, 256)}…` : accountName, address: clientAddress };
    const retryAfter = this.throttle.retryAfterSec(clientAddress);
    if (retryAfter > 0) {
      this.log?.warn({ ...who, retryAfterSec: retryAfter }, 'login refused: too many failed attempts from this address');
      throw new ZStackError('ID.1000', `too many failed login attempts; retry after ${retryAfter} s`, undefined, {
        retryAfterSec: retryAfter,
      });
    }
    const delayMs = this.throttle.accountDelayMs(accountName);
    if (delayMs > 0) {
      this.log?.warn({ ...who, delayMs }, 'login slowed: recent failed attempts on this account');
      await sleep(delayMs);
    }
    const account = await this.db.selectFrom('account').selectAll().where('name', '=', accountName).executeTakeFirst();
    // Verify against a dummy hash when the account is unknown so timing does not reveal account names.
    const ok = account ? await verifyPassword(password, account.password_hash) : (await verifyPassword(password, DUMMY_HASH), false);
    if (!account || !ok) {
      const refusedFor = this.throttle.failed(accountName, clientAddress);
      this.log?.warn({ ...who, ...(refusedFor ? { refusedForSec: refusedFor } : {}) }, 'login failed: wrong account name or password');
      throw new ZStackError('ID.1000', 'wrong account name or password');
    }
    this.throttle.succeeded(clientAddress);
    const now = Date.now();
    await this.db.deleteFrom('session').where('expired_date', '<', now).execute();
    const active = await this.db
      .selectFrom('session')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_uuid', '=', account.uuid)
      .executeTakeFirstOrThrow();
    if (Number(active.n) >= MAX_SESSIONS_PER_USER) {
      throw new ZStackError(
        'ID.1006',
        `account[name:${accountName}] already has ${MAX_SESSIONS_PER_USER} active sessions; log out some of them first`,
      );
    }
    const session: SessionTable = {
      uuid: newUuid(),
      account_uuid: account.uuid,
      user_uuid: account.uuid,
      user_type: 'AccountVO',
      create_date: now,
      expired_date: now + SESSION_TIMEOUT_MS,
    };
    await this.db.insertInto('session').values(session).execute();
    return session;
  }

  /**
   * Seconds a client address must still wait before another credential check (password or access-key
   * signature); 0 when it may try. Access-key refusals count as failed logins of the key's id.
   */
  refusedFor(clientAddress: string): number {
    return this.throttle.retryAfterSec(clientAddress);
  }

  /** Records a failed access-key authentication (unknown key or bad signature) like a failed login. */
  accessKeyFailed(accessKeyId: string, clientAddress: string, reason: string): void {
    const who = { accessKeyId: accessKeyId.length > 64 ? `${accessKeyId.slice(0, 64)}…` : accessKeyId, address: clientAddress };
    const refusedFor = this.throttle.failed(`accesskey:${accessKeyId}`, clientAddress);
    this.log?.warn({ ...who, reason, ...(refusedFor ? { refusedForSec: refusedFor } : {}) }, 'access-key authentication failed');
  }

  /** Checks a session and renews it to now + 7200 s, as every authenticated ZStack call does. */
  async authenticate(sessionUuid: string): Promise<SessionTable> {
    const now = Date.now();
    const session = await this.db.selectFrom('session').selectAll().where('uuid', '=', sessionUuid).executeTakeFirst();
    if (!session || session.expired_date <= now) throw new ZStackError('ID.1001', 'Session expired');
    session.expired_date = now + SESSION_TIMEOUT_MS;
    await this.db.updateTable('session').set({ expired_date: session.expired_date }).where('uuid', '=', sessionUuid).execute();
    return session;
  }

  async isValid(sessionUuid: string): Promise<boolean> {
    const session = await this.db.selectFrom('session').select('expired_date').where('uuid', '=', sessionUuid).executeTakeFirst();
    return session !== undefined && session.expired_date > Date.now();
  }

  async renew(sessionUuid: string, durationSec: number): Promise<SessionTable> {
    const session = await this.authenticate(sessionUuid);
    session.expired_date = Date.now() + durationSec * 1000;
    await this.db.updateTable('session').set({ expired_date: session.expired_date }).where('uuid', '=', sessionUuid).execute();
    return session;
  }

  async logout(sessionUuid: string): Promise<void> {
    await this.db.deleteFrom('session').where('uuid', '=', sessionUuid).execute();
  }
}

// A valid scrypt hash of a random value, used only to spend the same time on unknown account names.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$' + Buffer.alloc(64).toString('base64');
