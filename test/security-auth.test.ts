/**
 * Issue 10, finding 3: an API call without a valid session stores nothing and runs nothing, yet answers as
 * ZStack does (202 + location, then 503 ID.1001 when polled), from any node sharing the secret key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { newUuid } from '../src/lib/ids.js';
import { LruMap } from '../src/lib/lru.js';
import { startProcess, type TestServer, ZClient } from './helpers/zimage.js';

type Proc = Awaited<ReturnType<typeof startProcess>>;

const SECRET = randomBytes(32).toString('base64');

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Runs `n` calls of `fn`, `width` at a time. */
async function flood<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

describe('no work without a session', () => {
  let server: Proc;
  let db: Database.Database;
  const jobRows = () => (db.prepare('SELECT count(*) AS n FROM api_job').get() as { n: number }).n;

  before(async () => {
    server = await startProcess([], { ZIMAGE_SECRET_KEY: SECRET });
    await server.client.login();
    db = new Database(join(server.dataDir, 'zimage.db'), { readonly: true, fileMustExist: true });
  });
  after(async () => {
    db?.close();
    await server?.stop();
  });

  const expectRefused = async (res: { status: number; body: any; text: string }) => {
    assert.equal(res.status, 202, res.text);
    assert.ok(typeof res.body.location === 'string' && typeof res.body.apiTimeout === 'number', res.text);
    const polled = await fetch(res.body.location);
    assert.equal(polled.status, 503);
    const body = await polled.json();
    assert.equal(body.error.code, 'ID.1001');
    assert.equal(body.error.details, 'Session expired');
    return res.body.location as string;
  };

  test('10,000 async calls with a made-up session: each 202 then 503 ID.1001, no api_job row, memory bounded', async () => {
    const fake = new ZClient(server.url);
    fake.session = 'fake';
    const rowsBefore = jobRows();
    // Warm up the server's code paths so the RSS baseline is fair.
    await flood(200, 16, () => fake.raw('DELETE', `/images/${newUuid()}`));
    const rssBefore = await rssMiB(server.proc.pid!);
    const answers = await flood(10_000, 32, () => fake.raw('DELETE', `/images/${newUuid()}`));
    assert.ok(
      answers.every((a) => a.status === 202),
      'every call is answered 202',
    );
    const locations = new Set(answers.map((a) => a.body.location as string));
    assert.equal(locations.size, 10_000, 'every call gets its own job id');
    const sample = [...locations].filter((_, i) => i % 25 === 0);
    const polled = await flood(sample.length, 32, async (i) => {
      const res = await fetch(sample[i]!);
      return { status: res.status, body: await res.json() };
    });
    assert.ok(
      polled.every((p) => p.status === 503 && p.body.error.code === 'ID.1001'),
      'polling (every 25th) answers 503 ID.1001',
    );
    assert.equal(jobRows(), rowsBefore, 'the api_job table is unchanged');
    const rssAfter = await rssMiB(server.proc.pid!);
    assert.ok(rssAfter - rssBefore < 60, `RSS grew from ${rssBefore.toFixed(0)} to ${rssAfter.toFixed(0)} MiB`);
    assert.ok(rssAfter < 300, `RSS ${rssAfter.toFixed(0)} MiB`);
  });

  test('a caller-chosen X-Job-UUID is remembered in memory, not in the database', async () => {
    const fake = new ZClient(server.url);
    fake.session = 'fake';
    const rowsBefore = jobRows();
    const ids = Array.from({ length: 500 }, () => randomBytes(16).toString('hex'));
    const answers = await flood(ids.length, 32, (i) =>
      fake.raw('PUT', `/images/${newUuid()}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': ids[i]! }),
    );
    for (const [i, a] of answers.entries()) assert.equal(a.body.location, `${server.url}/zstack/v1/api-jobs/${ids[i]}`);
    await expectRefused(answers[0]!);
    await expectRefused(answers.at(-1)!);
    assert.equal(jobRows(), rowsBefore);
  });

  test('the memory record is bounded: the oldest entries are forgotten first', () => {
    const lru = new LruMap<string, number>(10_000);
    for (let i = 0; i < 25_000; i++) lru.set(`k${i}`, i);
    assert.equal(lru.size, 10_000);
    assert.equal(lru.get('k14999'), undefined);
    assert.equal(lru.get('k15000'), 15000);
  });

  test('a logged-out or expired session is refused the same way; a valid one runs as a job', async () => {
    const c = new ZClient(server.url);
    const session = await c.login();
    const rowsBefore = jobRows();
    const image = newUuid();
    const ran = await c.call('DELETE', `/images/${image}`);
    assert.equal(ran.status, 200, ran.text);
    assert.equal(jobRows(), rowsBefore + 1, 'an authenticated call is a job');

    const renew = await c.raw('PUT', `/accounts/sessions/${session}/renew`, { renewSession: { duration: 1 } });
    assert.equal(renew.status, 200, renew.text);
    await new Promise((r) => setTimeout(r, 1200));
    await expectRefused(await c.raw('DELETE', `/images/${image}`));

    const other = new ZClient(server.url);
    const s2 = await other.login();
    assert.equal((await other.raw('DELETE', `/accounts/sessions/${s2}`)).status, 200);
    await expectRefused(await other.raw('DELETE', `/images/${image}`));
    assert.equal(jobRows(), rowsBefore + 1);
  });

  test('a missing Authorization header is still the 400 text', async () => {
    const anon = new ZClient(server.url);
    const res = await anon.raw('DELETE', `/images/${newUuid()}`);
    assert.equal(res.status, 400);
    assert.equal(res.text, "missing header 'Authorization'");
  });

  test('sync APIs with a made-up session answer 503 ID.1001 and store nothing', async () => {
    const fake = new ZClient(server.url);
    fake.session = 'fake';
    const rowsBefore = jobRows();
    const res = await fake.raw('GET', '/images');
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'ID.1001');
    assert.equal(jobRows(), rowsBefore);
  });

  test('the id of a refused call cannot be reused as X-Job-UUID (polling would keep answering the refusal)', async () => {
    const fake = new ZClient(server.url);
    fake.session = 'fake';
    const refused = await fake.raw('DELETE', `/images/${newUuid()}`);
    const id = (refused.body.location as string).split('/').pop()!;
    const c = new ZClient(server.url);
    await c.login();
    const reuse = await c.raw('DELETE', `/images/${newUuid()}`, undefined, { 'X-Job-UUID': id });
    assert.equal(reuse.status, 400);
    assert.equal(reuse.text, `Duplicate job uuid[${id}]`);
  });

  test('another node with the same secret key answers the derived id; a made-up id is unknown', async () => {
    const fake = new ZClient(server.url);
    fake.session = 'fake';
    const first = await fake.raw('DELETE', `/images/${newUuid()}`);
    const id = (first.body.location as string).split('/').pop()!;
    let other: TestServer | undefined;
    try {
      other = await startProcess([], { ZIMAGE_SECRET_KEY: SECRET });
      const there = await fetch(`${other.url}/zstack/v1/api-jobs/${id}`);
      assert.equal(there.status, 503);
      assert.equal((await there.json()).error.code, 'ID.1001');
      const forged = `${id.slice(0, 16)}${id.slice(16, 17)}${'0'.repeat(15)}`;
      const res = await fetch(`${other.url}/zstack/v1/api-jobs/${forged}`);
      assert.equal(res.status, 404);
    } finally {
      await other?.stop();
    }
  });
});
