/**
 * Issue 10, finding 3 (logins): too many failures from one address refuse that address for a growing
 * period without checking the password; failures on one account from many addresses only slow it down;
 * X-Forwarded-For counts only from a trusted proxy; every failure is logged without the password.
 * Distinct client addresses are real: the test binds its sockets to 127.0.0.x.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { LoginThrottle } from '../src/services/login-throttle.js';
import { ADMIN_WIRE_PASSWORD, startProcess, waitFor } from './helpers/zimage.js';

const WRONG = 'f'.repeat(128);

interface Answer {
  status: number;
  body: any;
  ms: number;
}

/** LogInByAccount from a chosen local address (the server sees it as the socket peer). */
function login(url: string, from: string, accountName: string, password: string, headers: Record<string, string> = {}): Promise<Answer> {
  const payload = JSON.stringify({ logInByAccount: { accountName, password } });
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/zstack/v1/accounts/login`,
      { method: 'PUT', localAddress: from, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), ms: Date.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The throttle's own log lines (login failed / slowed / refused). */
const logLines = (output: string) =>
  output
    .slice(0, output.lastIndexOf('\n') + 1) // only complete lines: the last one may still be arriving
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>)
    .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('login '));

describe('login throttling', () => {
  let server: Awaited<ReturnType<typeof startProcess>>;
  before(async () => {
    server = await startProcess([], {
      ZIMAGE_TRUSTED_PROXIES: '127.0.0.9/32',
      ZIMAGE_LOGIN_ACCOUNT_DELAY_MS: '100',
      ZIMAGE_LOGIN_ACCOUNT_MAX_DELAY_MS: '400',
    });
  });
  after(() => server?.stop());

  test('5 failures from one address: the 6th, even with the right password, is refused with a retry time', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await login(server.url, '127.0.0.2', 'admin', WRONG);
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'ID.1000');
      assert.equal(res.body.error.details, 'wrong account name or password');
    }
    const sixth = await login(server.url, '127.0.0.2', 'admin', ADMIN_WIRE_PASSWORD);
    assert.equal(sixth.status, 503);
    assert.equal(sixth.body.error.code, 'ID.1000');
    assert.match(sixth.body.error.details, /^too many failed login attempts; retry after (\d+) s$/);
    const wait = Number(/after (\d+) s/.exec(sixth.body.error.details)![1]);
    assert.ok(wait > 50 && wait <= 60, `retry after ${wait} s`);
    assert.equal(sixth.body.error.opaque.retryAfterSec, wait);
    await waitFor('the refusal to be logged', () =>
      logLines(server.output()).some((l) => l.msg?.startsWith('login refused') && l.address === '127.0.0.2'),
    );
  });

  test('the right password from another address still logs in (the account is slowed, not locked)', async () => {
    const res = await login(server.url, '127.0.0.3', 'admin', ADMIN_WIRE_PASSWORD);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.inventory.uuid);
  });

  test('failures on one account from many addresses add a growing, capped delay to each attempt', async () => {
    const before = server.output().length;
    // 5 failures are on record for admin (from 127.0.0.2); each further one doubles the delay, up to 400 ms.
    for (const from of ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']) {
      const res = await login(server.url, from, 'admin', WRONG);
      assert.equal(res.body.error.details, 'wrong account name or password', 'a slowed attempt is still checked, not refused');
    }
    await waitFor(
      '4 slowed attempts logged',
      () => logLines(server.output().slice(before)).filter((l) => l.msg?.startsWith('login slowed')).length >= 4,
    );
    const delays = logLines(server.output().slice(before))
      .filter((l) => l.msg?.startsWith('login slowed'))
      .map((l) => l.delayMs as number);
    assert.deepEqual(delays, [100, 200, 400, 400], 'the delay doubles per failure and is capped');
    const ok = await login(server.url, '127.0.0.8', 'admin', ADMIN_WIRE_PASSWORD);
    assert.equal(ok.status, 200);
    assert.ok(ok.ms >= 350, `the attempt waited (${ok.ms} ms)`);
  });

  test('every failure is logged with account name and client address, never the password', async () => {
    await waitFor('9 failures logged', () => logLines(server.output()).filter((l) => l.msg?.startsWith('login failed')).length >= 9);
    const failures = logLines(server.output()).filter((l) => l.msg?.startsWith('login failed'));
    assert.ok(
      failures.every((l) => l.account === 'admin' && /^127\.0\.0\.\d$/.test(l.address)),
      JSON.stringify(failures[0]),
    );
    assert.ok(!server.output().includes(WRONG) && !server.output().includes(ADMIN_WIRE_PASSWORD), 'no password in the log');
    assert.ok(!/scrypt\$/.test(server.output()), 'no password hash in the log');
  });

  test('X-Forwarded-For from an untrusted peer is ignored', async () => {
    for (let i = 0; i < 5; i++) {
      await login(server.url, '127.0.0.10', 'nobody', WRONG, { 'X-Forwarded-For': `10.0.0.${i}` });
    }
    const res = await login(server.url, '127.0.0.10', 'nobody', WRONG, { 'X-Forwarded-For': '10.9.9.9' });
    assert.match(res.body.error.details, /^too many failed login attempts/, 'counted as the peer, whatever the header says');
    await waitFor('6 lines for nobody', () => logLines(server.output()).filter((l) => l.account === 'nobody').length >= 6);
    const lines = logLines(server.output()).filter((l) => l.account === 'nobody');
    assert.ok(lines.length >= 6 && lines.every((l) => l.address === '127.0.0.10'));
  });

  test('X-Forwarded-For from a trusted proxy names the client; one client refused does not refuse the proxy', async () => {
    for (let i = 0; i < 5; i++) await login(server.url, '127.0.0.9', 'proxied', WRONG, { 'X-Forwarded-For': '10.1.1.1' });
    const blocked = await login(server.url, '127.0.0.9', 'proxied', WRONG, { 'X-Forwarded-For': '10.1.1.1' });
    assert.match(blocked.body.error.details, /^too many failed login attempts/);
    const other = await login(server.url, '127.0.0.9', 'proxied', WRONG, { 'X-Forwarded-For': '203.0.113.7, 10.2.2.2' });
    assert.equal(other.body.error.details, 'wrong account name or password', 'another client behind the proxy is still checked');
    await waitFor('7 lines for proxied', () => logLines(server.output()).filter((l) => l.account === 'proxied').length >= 7);
    const last = logLines(server.output())
      .filter((l) => l.account === 'proxied')
      .at(-1)!;
    assert.equal(last.address, '10.2.2.2', 'the rightmost untrusted hop is the client');
  });

  test("a successful login clears the address's counter", async () => {
    for (let i = 0; i < 4; i++) await login(server.url, '127.0.0.11', 'other', WRONG);
    assert.equal((await login(server.url, '127.0.0.11', 'admin', ADMIN_WIRE_PASSWORD)).status, 200);
    for (let i = 0; i < 4; i++) {
      const res = await login(server.url, '127.0.0.11', 'other', WRONG);
      assert.equal(res.body.error.details, 'wrong account name or password', `attempt ${i + 1} after the reset is checked`);
    }
  });
});

describe('login back-off (fake clock)', () => {
  test('the refusal grows at each failure after the first, is capped, and a quiet spell forgives', () => {
    let now = 1_000_000;
    const t = new LoginThrottle(
      { maxFailures: 5, windowSec: 300, backoffSec: 60, maxBackoffSec: 600, accountDelayMs: 0, accountMaxDelayMs: 0 },
      () => now,
    );
    for (let i = 0; i < 4; i++) assert.equal(t.failed('admin', 'a'), 0);
    assert.equal(t.failed('admin', 'a'), 60);
    const periods = [];
    for (let i = 0; i < 5; i++) {
      now += t.retryAfterSec('a') * 1000;
      assert.equal(t.retryAfterSec('a'), 0, 'free to try once the period ends');
      periods.push(t.failed('admin', 'a'));
    }
    assert.deepEqual(periods, [120, 240, 480, 600, 600]);
    assert.equal(t.retryAfterSec('b'), 0, 'other addresses are not affected');
    now += (600 + 300) * 1000 + 1;
    assert.equal(t.failed('admin', 'a'), 0, 'after a quiet spell the count starts again');
  });
});
