import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/connect.js';
import type { AccessKeyTable, SessionTable } from '../db/schema.js';
import { zstackDate } from '../lib/dates.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid, resourceUuidProblem } from '../lib/ids.js';
import type { SecretBox } from '../lib/secret-box.js';
import { parseZStackDate } from '../lib/zoned-date.js';
import { ADMIN_UUID } from './accounts.js';
import { omitNulls } from './inventory.js';
import { conditionsFor, type QueryTarget, sortColumn } from './query.js';
import { answerQuery, queryRequestOf } from './query-answer.js';

/** The server-side class of the inventory below, as the SDK's SourceClassMap names it. */
export const ACCESS_KEY_INVENTORY_CLASS = INVENTORY_CLASS.accessKey;
const ACCESS_KEY_VO = 'AccessKeyVO';

/** ZStack's limits: generated id 20 and secret 40 alphanumerics; an account other than admin holds at most 2 keys. */
const ID_LENGTH = 20;
const SECRET_LENGTH = 40;
const QUOTA = 2;
/** RestConstants.REQUEST_DURATION_MINUTES: a signed request's Date may differ from the server clock by this much. */
export const MAX_SKEW_MS = 15 * 60_000;

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const randomAlphanumeric = (n: number): string => Array.from({ length: n }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join('');

/** AccessKeyInventory with the SDK's field names. The secret appears only in CreateAccessKey's reply. */
export function accessKeyInventory(k: AccessKeyTable, secret?: string): Record<string, unknown> {
  return withClass(
    ACCESS_KEY_INVENTORY_CLASS,
    omitNulls({
      uuid: k.uuid,
      description: k.description,
      accountUuid: k.account_uuid,
      userUuid: k.user_uuid,
      AccessKeyID: k.access_key_id,
      AccessKeySecret: secret,
      state: k.state,
      createDate: zstackDate(k.create_date),
      lastOpDate: zstackDate(k.last_op_date),
    }),
  );
}

const ACCESS_KEY_QUERY: QueryTarget<'access_key'> = {
  table: 'access_key',
  inventoryClass: ACCESS_KEY_INVENTORY_CLASS,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    description: { column: 'description', kind: 'string' },
    accountUuid: { column: 'account_uuid', kind: 'string' },
    userUuid: { column: 'user_uuid', kind: 'string' },
    AccessKeyID: { column: 'access_key_id', kind: 'string' },
    state: { column: 'state', kind: 'string' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
  },
  nested: {},
};

/** Why a signed request is refused; the API layer answers each as ZStack's RestServer does. */
export class AccessKeyRefused extends Error {
  constructor(
    readonly reason: 'no-date' | 'bad-date' | 'skewed' | 'unknown-key' | 'bad-signature',
    message: string,
  ) {
    super(message);
    this.name = 'AccessKeyRefused';
  }
}

/** What a signed request carries: `Authorization: ZStack <id>:<signature>`, `Date`, the method and `/v1<path>`. */
export interface SignedRequest {
  accessKeyId: string;
  signature: string;
  date: string | undefined;
  method: string;
  /** The decoded request path below the context path, without the query string: `/v1/images`. */
  uri: string;
}

/** The HMAC-SHA1 signature ZStack's SDK computes: base64(HMAC(secret, METHOD\nDate\n/v1<path>)). */
export const accessKeySignature = (secret: string, method: string, date: string, uri: string): string =>
  createHmac('sha1', secret).update(`${method}\n${date}\n${uri}`).digest('base64');

/** RestServer.checkTime: the Date header is present, in ZStack's format, and within ±15 min of the server clock. */
export function checkRequestTime(date: string | undefined, now = Date.now()): asserts date is string {
  if (date === undefined) throw new AccessKeyRefused('no-date', "'Date' must be incuded in request header");
  const at = parseZStackDate(date);
  if (at === undefined) throw new AccessKeyRefused('bad-date', "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'");
  if (Math.abs(at - now) > MAX_SKEW_MS) throw new AccessKeyRefused('skewed', 'requestTimeTooSkewed');
}

export const isAdminSession = (s: Pick<SessionTable, 'account_uuid'> | undefined): boolean => s?.account_uuid === ADMIN_UUID;

export class AccessKeyService {
  constructor(
    private readonly db: Db,
    private readonly secrets: SecretBox,
  ) {}

  /**
   * Verifies a signed request as ZStack does (Date present and parseable, within ±15 min, key known and
   * Enabled, signature equal) and returns the session it stands for. Stores nothing.
   */
  async verify(req: SignedRequest, now = Date.now()): Promise<SessionTable> {
    checkRequestTime(req.date, now);
    const key = await this.db.selectFrom('access_key').selectAll().where('access_key_id', '=', req.accessKeyId).executeTakeFirst();
    if (!key || key.state !== 'Enabled') {
      throw new AccessKeyRefused('unknown-key', `access key id: ${req.accessKeyId} does not existed or disabled`);
    }
    const expected = Buffer.from(accessKeySignature(this.secrets.open(key.secret), req.method, req.date, req.uri));
    const given = Buffer.from(req.signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new AccessKeyRefused('bad-signature', 'wrong accessKey signature');
    }
    // ZStack's access-key session: the key's uuid, its account, no expiry of its own.
    return {
      uuid: key.uuid,
      account_uuid: key.account_uuid,
      user_uuid: key.user_uuid,
      user_type: 'AccountVO',
      create_date: now,
      expired_date: now,
    };
  }

  /** CreateAccessKey: an account creates keys for itself; admin for any account. */
  async create(
    session: SessionTable | undefined,
    p: {
      accountUuid: string;
      userUuid?: string;
      description?: string;
      AccessKeyID?: string;
      AccessKeySecret?: string;
      resourceUuid?: string;
    },
  ): Promise<Record<string, unknown>> {
    const badUuid = resourceUuidProblem(p.resourceUuid); // ApiMediatorImpl, before any other check
    if (badUuid) throw new ZStackError('SYS.1007', badUuid);
    const account = await this.db.selectFrom('account').select('uuid').where('uuid', '=', p.accountUuid).executeTakeFirst();
    if (!account)
      throw new ZStackError('SYS.1003', `invalid field[accountUuid], resource[uuid:${p.accountUuid}, type:AccountVO] not found`);
    if (p.userUuid !== undefined && p.userUuid !== p.accountUuid) {
      throw new ZStackError(
        'SYS.1007',
        `userUuid[${p.userUuid}] is not a user of account[uuid:${p.accountUuid}]: zimage accounts have no sub-users, give the account's own uuid`,
      );
    }
    this.checkOwner(session, p.accountUuid);
    if ((p.AccessKeyID === undefined) !== (p.AccessKeySecret === undefined)) {
      throw new ZStackError(
        'SYS.1007',
        'If a specified Accesskey is expected, the AccesskeyId and the AccesskeySecret must be provided at the same time.',
      );
    }
    if (p.AccessKeyID?.includes(':') || p.AccessKeySecret?.includes(':')) {
      throw new ZStackError('SYS.1007', "Access key ID and secret cannot contain ':'");
    }
    if (p.accountUuid !== ADMIN_UUID) {
      const n = await this.db
        .selectFrom('access_key')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_uuid', '=', p.accountUuid)
        .executeTakeFirstOrThrow();
      if (Number(n.n) >= QUOTA) {
        throw new ZStackError('SYS.1007', `The number of access keys for account[uuid=${p.accountUuid}] has exceeded the maximum limit`);
      }
    }
    const id = p.AccessKeyID ?? randomAlphanumeric(ID_LENGTH);
    const secret = p.AccessKeySecret ?? randomAlphanumeric(SECRET_LENGTH);
    const uuid = p.resourceUuid ?? newUuid();
    const clash = await this.db
      .selectFrom('access_key')
      .select(['uuid', 'access_key_id'])
      .where((eb) => eb.or([eb('uuid', '=', uuid), eb('access_key_id', '=', id)]))
      .executeTakeFirst();
    if (clash) {
      throw new ZStackError(
        'SYS.1007',
        clash.uuid === uuid
          ? `resourceUuid[${uuid}] is already used by another access key`
          : `AccessKeyID[${id}] is already used by another access key`,
      );
    }
    const now = Date.now();
    const row: AccessKeyTable = {
      uuid,
      account_uuid: p.accountUuid,
      user_uuid: p.accountUuid,
      access_key_id: id,
      secret: this.secrets.seal(secret),
      description: p.description ?? null,
      state: 'Enabled',
      create_date: now,
      last_op_date: now,
    };
    await this.db.insertInto('access_key').values(row).execute();
    return accessKeyInventory(row, secret);
  }

  /** QueryAccessKey: admin sees every key, another account its own; secrets are never returned. */
  async query(
    session: SessionTable | undefined,
    rawQuery: Record<string, string | string[]>,
    uuid?: string,
  ): Promise<Record<string, unknown>> {
    const req = queryRequestOf(rawQuery, uuid);
    let base = this.db.selectFrom('access_key').where((eb) => eb.and(conditionsFor(ACCESS_KEY_QUERY, req.conditions, eb)));
    if (!isAdminSession(session)) base = base.where('account_uuid', '=', session?.account_uuid ?? '');
    const rows = () => {
      const all = base.selectAll();
      return req.sort ? all.orderBy(sortColumn(ACCESS_KEY_QUERY, req.sort.field) as any, req.sort.direction) : all.orderBy('create_date');
    };
    return answerQuery(
      base,
      req,
      rows,
      (k) => accessKeyInventory(k),
      () => ACCESS_KEY_INVENTORY_CLASS,
    );
  }

  /** DeleteAccessKey: unknown keys are already deleted. */
  async delete(session: SessionTable | undefined, uuid: string): Promise<void> {
    const key = await this.db.selectFrom('access_key').select('account_uuid').where('uuid', '=', uuid).executeTakeFirst();
    if (!key) return;
    this.checkOwner(session, key.account_uuid);
    await this.db.deleteFrom('access_key').where('uuid', '=', uuid).execute();
  }

  async changeState(session: SessionTable | undefined, uuid: string, stateEvent: 'enable' | 'disable'): Promise<Record<string, unknown>> {
    const key = await this.db.selectFrom('access_key').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    if (!key) throw new ZStackError('SYS.1003', `invalid field[uuid], resource[uuid:${uuid}, type:${ACCESS_KEY_VO}] not found`);
    this.checkOwner(session, key.account_uuid);
    const state = stateEvent === 'enable' ? 'Enabled' : 'Disabled';
    const now = Date.now();
    await this.db.updateTable('access_key').set({ state, last_op_date: now }).where('uuid', '=', uuid).execute();
    return accessKeyInventory({ ...key, state, last_op_date: now });
  }

  /** AccessKeyApiInterceptor.validateAccount: only admin acts on another account's keys (argerr). */
  private checkOwner(session: SessionTable | undefined, accountUuid: string): void {
    if (isAdminSession(session) || session?.account_uuid === accountUuid) return;
    throw new ZStackError('SYS.1007', 'No permission to modify the AccessKey for current account');
  }
}
