/**
 * Access keys as ZStack's SDKs use them: `Authorization: ZStack <AccessKeyID>:<signature>` with the SDK's
 * `Date` (a zone id such as Etc/UTC), HMAC-SHA1 over `METHOD\nDate\n/v1<path>`; async calls polled with
 * `OAuth null`; ZStack's refusals; one account's keys kept from another; the secret stored encrypted.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_UUID, wirePassword } from '../src/services/accounts.js';
import { hashPassword } from '../src/services/passwords.js';
import { newUuid } from '../src/lib/ids.js';
import { startInProcess, type HttpAnswer, type TestServer } from './helpers/zimage.js';

/** The SDK's Date: `EEE, dd MMM yyyy HH:mm:ss VV` (English, the zone id of the client). */
function sdkDate(epochMs: number, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: 'short',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
      .formatToParts(new Date(epochMs))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.weekday}, ${parts.day} ${parts.month} ${parts.year} ${parts.hour}:${parts.minute}:${parts.second} ${zone}`;
}

interface Key {
  uuid: string;
  id: string;
  secret: string;
}

const LIMIT = 20;

describe('access keys', () => {
  let server: TestServer;
  let adminKey: Key;

  /** A request signed as the SDK signs it; `path` is below /zstack/v1 and may carry a query string. */
  const signed = (
    method: string,
    path: string,
    key: Key,
    o: {
      body?: unknown;
      zone?: string;
      at?: number;
      signPath?: string;
      secret?: string;
      date?: string | null;
      headers?: Record<string, string>;
    } = {},
  ): Promise<HttpAnswer> => {
    const date = o.date === undefined ? sdkDate(o.at ?? Date.now(), o.zone ?? 'Etc/UTC') : o.date;
    const signPath = o.signPath ?? path.split('?')[0]!;
    const signature = createHmac('sha1', o.secret ?? key.secret)
      .update(`${method}\n${date ?? ''}\n/v1${signPath}`)
      .digest('base64');
    const headers: Record<string, string> = { ...o.headers, Authorization: `ZStack ${key.id}:${signature}` };
    if (date !== null) headers.Date = date;
    return server.client.raw(method, path, o.body, headers);
  };

  /**
   * An async call signed as the SDK signs it, then its job polled as the SDK polls it: api-jobs with
   * `Authorization: OAuth null` (the SDK sends its null session id), until the final answer.
   */
  const signedAsync = async (method: string, path: string, key: Key, body?: unknown): Promise<{ status: number; body: any }> => {
    const job = newUuid();
    const first = await signed(method, path, key, { body, headers: { 'X-Job-UUID': job } });
    assert.ok(first.status === 200 || first.status === 202, `${method} ${path}: ${first.status} ${first.text}`);
    for (;;) {
      const res = await fetch(`${server.url}/zstack/v1/api-jobs/${job}`, { headers: { Authorization: 'OAuth null' } });
      if (res.status !== 202) return { status: res.status, body: await res.json() };
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const createKey = async (session: string, accountUuid: string, extra: Record<string, unknown> = {}): Promise<HttpAnswer> =>
    server.client.call(
      'POST',
      '/accesskeys',
      { params: { accountUuid, userUuid: accountUuid, ...extra } },
      { Authorization: `OAuth ${session}` },
    );

  const asKey = (inv: any): Key => ({ uuid: inv.uuid, id: inv.AccessKeyID, secret: inv.AccessKeySecret });

  const jobCount = async (): Promise<number> =>
    Number(
      (
        await server
          .app!.db.db.selectFrom('api_job')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  before(async () => {
    // Refused signatures count as failed logins: the refusal tests here stay under this limit from 127.0.0.1,
    // and the throttling test uses its own client address.
    server = await startInProcess({}, { ZIMAGE_LOGIN_MAX_FAILURES: String(LIMIT) });
    await server.client.login();
    // The admin key every signed call below uses; the first test checks CreateAccessKey on a key of its own.
    const created = await createKey(server.client.session!, ADMIN_UUID);
    assert.equal(created.status, 200, created.text);
    adminKey = asKey(created.body.inventory);
  });

  after(async () => {
    await server?.stop();
  });

  test('CreateAccessKey shows the secret once; QueryAccessKey never; the row holds it encrypted', async () => {
    const res = await createKey(server.client.session!, ADMIN_UUID, { description: 'ci' });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    assert.match(inv.AccessKeyID, /^[A-Za-z0-9]{20}$/);
    assert.match(inv.AccessKeySecret, /^[A-Za-z0-9]{40}$/);
    assert.equal(inv.accountUuid, ADMIN_UUID);
    assert.equal(inv.userUuid, ADMIN_UUID);
    assert.equal(inv.state, 'Enabled');
    assert.equal(inv.description, 'ci');
    assert.match(inv.createDate, /^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$/);

    const q = await server.client.call('GET', `/accesskeys?q=uuid=${inv.uuid}`);
    assert.equal(q.status, 200, q.text);
    assert.equal(q.body.inventories.length, 1);
    assert.equal(q.body.inventories[0].AccessKeyID, inv.AccessKeyID);
    assert.ok(!('AccessKeySecret' in q.body.inventories[0]), 'the secret is never queried back');
    assert.ok(!q.text.includes(inv.AccessKeySecret));
    const one = await server.client.call('GET', `/accesskeys/${inv.uuid}`);
    assert.equal(one.body.inventories[0].uuid, inv.uuid);

    const row = await server.app!.db.db.selectFrom('access_key').selectAll().where('uuid', '=', inv.uuid).executeTakeFirstOrThrow();
    assert.ok(row.secret.startsWith('enc:v1:'), 'sealed with the server secret key');
    assert.ok(!row.secret.includes(inv.AccessKeySecret));
    for (const f of readdirSync(server.dataDir).filter((n) => n.startsWith('zimage.db'))) {
      assert.ok(!readFileSync(join(server.dataDir, f)).includes(Buffer.from(inv.AccessKeySecret)), `${f} holds no plain secret`);
    }
  });

  test("signed GET, PUT and POST with the SDK's Date succeed; the async ones are polled with OAuth null", async () => {
    for (const zone of ['Etc/UTC', 'Asia/Shanghai', 'America/New_York', 'UTC', 'GMT']) {
      const res = await signed('GET', '/accesskeys', adminKey, { zone });
      assert.equal(res.status, 200, `${zone}: ${res.text}`);
      assert.ok(res.body.inventories.some((k: any) => k.uuid === adminKey.uuid));
    }
    // The query string is not signed (ZStack signs the request URI only).
    const filtered = await signed('GET', `/accesskeys?q=uuid=${adminKey.uuid}&limit=5`, adminKey);
    assert.equal(filtered.status, 200, filtered.text);
    assert.equal(filtered.body.inventories.length, 1);

    // POST (async): AddLocalBackupStorage, answered 202 and polled without credentials, as the SDK polls.
    const dir = join(server.dataDir, 'signed-bs');
    await mkdir(dir);
    const add = await signedAsync('POST', '/backup-storage/local', adminKey, { params: { name: 'signed', url: dir } });
    assert.equal(add.status, 200, JSON.stringify(add.body));
    const bs = add.body.inventory.uuid;

    // PUT (async action on a path with a uuid: the signature covers the substituted path).
    const put = await signedAsync('PUT', `/backup-storage/${bs}/actions`, adminKey, {
      changeBackupStorageState: { stateEvent: 'disable' },
    });
    assert.equal(put.status, 200);
    assert.equal(put.body.inventory.state, 'Disabled');

    // DELETE (async).
    const del = await signedAsync('DELETE', `/backup-storage/${bs}`, adminKey);
    assert.equal(del.status, 200);
    assert.equal((await server.client.call('GET', `/backup-storage/${bs}`)).body.inventories.length, 0);

    // CreateAccessKey answers at once (200): its reply, holding the secret, is never kept in a job row.
    const direct = await signed('POST', '/accesskeys', adminKey, { body: { params: { accountUuid: ADMIN_UUID, userUuid: ADMIN_UUID } } });
    assert.equal(direct.status, 200, direct.text);
    await server.client.call('DELETE', `/accesskeys/${direct.body.inventory.uuid}`);
  });

  test('the signature is the one openssl computes for METHOD\\nDate\\n/v1<path> (the README recipe)', async () => {
    const date = sdkDate(Date.now(), 'Etc/UTC');
    const mac = execFileSync('openssl', ['dgst', '-sha1', '-hmac', adminKey.secret, '-binary'], { input: `GET\n${date}\n/v1/zones` });
    const res = await server.client.raw('GET', '/zones', undefined, {
      Authorization: `ZStack ${adminKey.id}:${mac.toString('base64')}`,
      Date: date,
    });
    assert.equal(res.status, 200, res.text);
  });

  test("refusals answer ZStack's statuses and texts, and store and run nothing", async () => {
    const before = await jobCount();
    const bad = await signed('POST', '/zones', adminKey, { body: { params: { name: 'never' } }, secret: 'x'.repeat(40) });
    assert.equal(bad.status, 403);
    assert.equal(bad.text, 'wrong accessKey signature');
    const otherPath = await signed('GET', '/zones', adminKey, { signPath: '/accesskeys' });
    assert.equal(otherPath.status, 403, 'a signature is bound to its path');
    const unknown = await signed('POST', '/zones', { ...adminKey, id: 'NoSuchKeyNoSuchKey00' }, { body: { params: { name: 'never' } } });
    assert.equal(unknown.status, 403);
    assert.equal(unknown.text, 'access key id: NoSuchKeyNoSuchKey00 does not existed or disabled');
    const skewed = await signed('POST', '/zones', adminKey, { body: { params: { name: 'never' } }, at: Date.now() - 16 * 60_000 });
    assert.equal(skewed.status, 403);
    assert.equal(skewed.text, 'requestTimeTooSkewed');
    const future = await signed('GET', '/zones', adminKey, { at: Date.now() + 16 * 60_000 });
    assert.equal(future.status, 403);
    const within = await signed('GET', '/zones', adminKey, { at: Date.now() - 14 * 60_000 });
    assert.equal(within.status, 200, 'within 15 minutes');
    const noDate = await signed('GET', '/zones', adminKey, { date: null });
    assert.equal(noDate.status, 400);
    assert.equal(noDate.text, "'Date' must be incuded in request header");
    const badDate = await signed('GET', '/zones', adminKey, { date: new Date().toISOString() });
    assert.equal(badDate.status, 400);
    assert.equal(badDate.text, "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'");
    const badZone = await signed('GET', '/zones', adminKey, {
      date: sdkDate(Date.now(), 'Etc/UTC').replace('Etc/UTC', 'Nowhere/Atlantis'),
    });
    assert.equal(badZone.status, 400);
    const malformed = await server.client.raw('GET', '/zones', undefined, {
      Authorization: `ZStack ${adminKey.id}`,
      Date: sdkDate(Date.now(), 'UTC'),
    });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.text, "accessKey format is 'ZStack AccessKeyId:Signature'");
    const emptySignature = await server.client.raw('GET', '/zones', undefined, {
      Authorization: `ZStack ${adminKey.id}:`,
      Date: sdkDate(Date.now(), 'UTC'),
    });
    assert.equal(emptySignature.status, 400);
    const dateFirst = await server.client.raw('GET', '/zones', undefined, { Authorization: `ZStack ${adminKey.id}` });
    assert.equal(dateFirst.text, "'Date' must be incuded in request header", 'ZStack checks the Date before the credential');
    assert.equal(await jobCount(), before, 'no job row for a refused request');
    const zones = await server.client.call('GET', '/zones?q=name=never');
    assert.deepEqual(zones.body.inventories, [], 'nothing ran');
  });

  test('a disabled key is refused until enabled again; a deleted key is refused', async () => {
    const created = await createKey(server.client.session!, ADMIN_UUID);
    const key = asKey(created.body.inventory);
    const off = await server.client.call('PUT', `/accesskeys/${key.uuid}/actions`, { changeAccessKeyState: { stateEvent: 'disable' } });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.inventory.state, 'Disabled');
    assert.ok(!('AccessKeySecret' in off.body.inventory));
    const refused = await signed('GET', '/zones', key);
    assert.equal(refused.status, 403);
    assert.equal(refused.text, `access key id: ${key.id} does not existed or disabled`);
    const on = await server.client.call('PUT', `/accesskeys/${key.uuid}/actions`, { changeAccessKeyState: { stateEvent: 'enable' } });
    assert.equal(on.body.inventory.state, 'Enabled');
    assert.equal((await signed('GET', '/zones', key)).status, 200);
    const del = await signedAsync('DELETE', `/accesskeys/${key.uuid}`, key);
    assert.equal(del.status, 200, 'a key may delete itself');
    assert.equal((await signed('GET', '/zones', key)).status, 403);
    const gone = await server.client.call('DELETE', `/accesskeys/${key.uuid}`);
    assert.equal(gone.status, 200, 'deleting an unknown key succeeds, as in ZStack');
    const missing = await server.client.call('PUT', `/accesskeys/${newUuid()}/actions`, {
      changeAccessKeyState: { stateEvent: 'disable' },
    });
    assert.equal(missing.body.error.code, 'SYS.1003');
  });

  test('an account creates and sees its own keys only; admin acts on any account', async () => {
    const alice = newUuid();
    const now = Date.now();
    await server
      .app!.db.db.insertInto('account')
      .values({
        uuid: alice,
        name: 'alice',
        password_hash: await hashPassword(wirePassword('alice-pw')),
        create_date: now,
        last_op_date: now,
      })
      .execute();
    const login = await server.client.raw('PUT', '/accounts/login', {
      logInByAccount: { accountName: 'alice', password: wirePassword('alice-pw') },
    });
    assert.equal(login.status, 200, login.text);
    const aliceSession = login.body.inventory.uuid as string;
    const asAlice = { Authorization: `OAuth ${aliceSession}` };

    const forAdmin = await createKey(aliceSession, ADMIN_UUID);
    assert.equal(forAdmin.status, 503);
    assert.equal(forAdmin.body.error.code, 'SYS.1007');
    assert.equal(forAdmin.body.error.details, 'No permission to modify the AccessKey for current account');
    const subUser = await createKey(aliceSession, alice, { userUuid: newUuid() });
    assert.equal(subUser.body.error.code, 'SYS.1007');
    const mine = await createKey(aliceSession, alice);
    assert.equal(mine.status, 200, mine.text);
    const aliceKey = asKey(mine.body.inventory);
    const byAdmin = await createKey(server.client.session!, alice, {
      AccessKeyID: 'AliceChosenId01',
      AccessKeySecret: 'alice-chosen-secret-0001',
    });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal(byAdmin.body.inventory.AccessKeyID, 'AliceChosenId01');
    const third = await createKey(aliceSession, alice);
    assert.equal(third.body.error.code, 'SYS.1007');
    assert.match(third.body.error.details, /exceeded the maximum limit/);

    const seen = await server.client.call('GET', '/accesskeys', undefined, asAlice);
    assert.deepEqual(seen.body.inventories.map((k: any) => k.accountUuid).sort(), [alice, alice]);
    const signedSeen = await signed('GET', '/accesskeys', aliceKey);
    assert.equal(signedSeen.status, 200, signedSeen.text);
    assert.ok(
      signedSeen.body.inventories.every((k: any) => k.accountUuid === alice),
      "a signed call acts as the key's account",
    );
    const all = await server.client.call('GET', `/accesskeys?q=accountUuid=${alice}&count=true`);
    assert.equal(all.body.total, 2, 'admin sees every account');

    const touchAdmin = await server.client.call('DELETE', `/accesskeys/${adminKey.uuid}`, undefined, asAlice);
    assert.equal(touchAdmin.body.error.code, 'SYS.1007');
    const disabled = await signedAsync('PUT', `/accesskeys/${adminKey.uuid}/actions`, aliceKey, {
      changeAccessKeyState: { stateEvent: 'disable' },
    });
    assert.equal(disabled.status, 503);
    assert.equal(disabled.body.error.code, 'SYS.1007');
    assert.equal((await signed('GET', '/zones', adminKey)).status, 200, "admin's key still works");
  });

  test('bad parameters: both or neither of AccessKeyID/AccessKeySecret, no colon, lengths, unknown account', async () => {
    const s = server.client.session!;
    assert.equal((await createKey(s, ADMIN_UUID, { AccessKeyID: 'OnlyTheId00' })).body.error.code, 'SYS.1007');
    assert.equal(
      (await createKey(s, ADMIN_UUID, { AccessKeyID: 'Has:Colon00', AccessKeySecret: 'secret-secret' })).body.error.details,
      "Access key ID and secret cannot contain ':'",
    );
    assert.match(
      (await createKey(s, ADMIN_UUID, { AccessKeyID: 'short', AccessKeySecret: 'secret-secret' })).body.error.details,
      /less than the min length/,
    );
    const unknown = await createKey(s, newUuid());
    assert.equal(unknown.body.error.code, 'SYS.1003');
    const missing = await server.client.call('POST', '/accesskeys', { params: { userUuid: ADMIN_UUID } });
    assert.equal(missing.body.error.code, 'SYS.1007');
  });
  test('failed signatures count as failed logins: LIMIT from one address refuse that address, not others', async () => {
    /** A signed GET from a chosen local address (the server sees it as the socket peer). */
    const from = (address: string, secret: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const date = sdkDate(Date.now(), 'Etc/UTC');
        const signature = createHmac('sha1', secret).update(`GET\n${date}\n/v1/zones`).digest('base64');
        const req = http.request(
          `${server.url}/zstack/v1/zones`,
          { method: 'GET', localAddress: address, headers: { Authorization: `ZStack ${adminKey.id}:${signature}`, Date: date } },
          (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < LIMIT; i++) {
      const bad = await from('127.0.0.7', 'y'.repeat(40));
      assert.equal(bad.status, 403);
      assert.equal(bad.text, 'wrong accessKey signature');
    }
    const right = await from('127.0.0.7', adminKey.secret);
    assert.equal(right.status, 403, 'the address is refused even with the right signature');
    assert.match(right.text, /^too many failed authentication attempts; retry after \d+ s$/);
    assert.equal((await from('127.0.0.8', adminKey.secret)).status, 200, 'another address is not affected');
  });
});
