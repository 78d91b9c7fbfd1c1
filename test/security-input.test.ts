/**
 * Input that used to answer 500 now gets ZStack's errors; control characters are refused; credentials in
 * an import url are used but never returned, stored or logged. A real `zimage serve` process on loopback.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startProcess, tempDir, type TestServer, type ZClient } from './helpers/zimage.js';

describe('hostile input', () => {
  let work: string;
  let http: TestHttpServer;
  let server: TestServer & { output: () => string };
  let c: ZClient;
  let bs: string;

  before(async () => {
    work = await tempDir('zimage-input-');
    http = await startTestHttpServer({ 'ok.raw': randomBytes(256 * 1024) });
    server = await startProcess([], { ZIMAGE_IMPORT_ALLOWED_NETWORKS: '127.0.0.0/8' }, { dataDir: join(work, 'data') });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(work)).uuid;
  });
  after(async () => {
    await server?.stop();
    await http?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('prototype names in q= and sort= are SYS.1007 naming the field, at any depth and on every query API', async () => {
    const cases: Array<[string, string]> = [
      ['q=__proto__=1', 'condition name[__proto__]'],
      ['q=constructor=1', 'condition name[constructor]'],
      ['q=toString!=x', 'condition name[toString]'],
      ['q=hasOwnProperty>1', 'condition name[hasOwnProperty]'],
      ['q=backupStorageRefs.__proto__=1', 'condition name[backupStorageRefs.__proto__]'],
      ['q=backupStorageRefs.constructor=1', 'condition name[backupStorageRefs.constructor]'],
      ['q=backupStorage.valueOf=1', 'condition name[backupStorage.valueOf]'],
      ['q=__proto__.name=1', 'condition name[__proto__.name]'],
      ['q=nosuchfield=1', 'condition name[nosuchfield]'],
      ['sort=__proto__', 'sort field[__proto__]'],
      ['sort=-constructor', 'sort field[constructor]'],
      ['sort=%2BtoString', 'sort field[toString]'],
    ];
    for (const path of ['/images', '/backup-storage', '/backup-storage/local']) {
      for (const [query, named] of cases) {
        if (path !== '/images' && query.includes('.')) continue;
        const res = await c.raw('GET', `${path}?${query}`);
        assert.equal(res.status, 503, `${path}?${query}: ${res.text}`);
        assert.equal(res.body.error.code, 'SYS.1007', res.text);
        assert.ok(res.body.error.details.includes(named), `${query}: ${res.body.error.details}`);
      }
    }
    // Unknown query parameters stay ignored, as ZStack does; fields= never reaches the prototype either.
    const ignored = await c.raw('GET', '/images?__proto__=1&constructor=x&nonsense=1&fields=constructor,name');
    assert.equal(ignored.status, 200, ignored.text);
  });

  test("limit and start outside 0..2^31-1 are ZStack's 400; numeric conditions must be integers", async () => {
    for (const [name, value] of [
      ['limit', '99999999999999999999'],
      ['limit', '2147483648'],
      ['limit', '-1'],
      ['limit', '1.5'],
      ['limit', 'ten'],
      ['start', '99999999999999999999'],
      ['start', '-5'],
    ]) {
      const res = await c.raw('GET', `/images?${name}=${value}`);
      assert.equal(res.status, 400, `${name}=${value}: ${res.text}`);
      assert.equal(res.text, `Invalid query parameter. '${name}' must be an integer`);
    }
    assert.equal((await c.raw('GET', '/images?limit=2147483647&start=2147483647')).status, 200);
    for (const q of ['size=99999999999999999999', 'size>1.5', 'createDate<1e400', 'size~=1%']) {
      const res = await c.raw('GET', `/images?q=${encodeURIComponent(q)}`);
      assert.equal(res.status, 503, `${q}: ${res.text}`);
      assert.equal(res.body.error.code, 'SYS.1007');
    }
  });

  test('a wrong-typed object value with a toString key is a 400, not a 500', async () => {
    const res = await c.raw('POST', '/backup-storage/local', { params: { name: 'x', url: work, importImages: { toString: 'x' } } });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /\[importImages\]/);
  });

  test('control characters (C0, DEL, C1) in names, descriptions and other text are SYS.1007', async () => {
    const image = await c.call('POST', '/images', {
      params: { name: 'ok', url: http.url('/files/ok.raw'), format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(image.status, 200, image.text);
    const uuid = image.body.inventory.uuid;
    const cases: Array<[string, string, unknown, string, string]> = [
      ['POST', '/images', { params: { name: 'a\u0007b', url: http.url('/files/ok.raw'), backupStorageUuids: [bs] } }, 'name', 'U+0007'],
      [
        'POST',
        '/images',
        { params: { name: 'n', description: 'tab\there', url: http.url('/files/ok.raw'), backupStorageUuids: [bs] } },
        'description',
        'U+0009',
      ],
      [
        'POST',
        '/images',
        { params: { name: 'n', url: `${http.url('/files/ok.raw')}\r\nX: y`, backupStorageUuids: [bs] } },
        'url',
        'U+000D',
      ],
      ['PUT', `/images/${uuid}/actions`, { updateImage: { name: 'del\u007f' } }, 'name', 'U+007F'],
      ['PUT', `/images/${uuid}/actions`, { updateImage: { description: 'c1\u0085' } }, 'description', 'U+0085'],
      ['POST', '/backup-storage/local', { params: { name: 'esc\u001b[31m', url: work } }, 'name', 'U+001B'],
      ['POST', '/backup-storage/local', { params: { name: 'n', url: `${work}\u0000x` } }, 'url', 'U+0000'],
    ];
    for (const [method, path, body, field, char] of cases) {
      const res = await c.call(method, path, body);
      assert.equal(res.status, 503, `${path} ${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.error.code, 'SYS.1007', res.text);
      assert.match(res.body.error.details, new RegExp(`field\\[${field}\\] .*control character ${char.replace('+', '\\+')}`));
    }
    const inv = (await c.raw('GET', `/images/${uuid}`)).body.inventories[0];
    assert.equal(inv.name, 'ok', 'nothing was changed');
  });

  test('credentials in an import url are used, but masked in the reply, the database and the log', async () => {
    const before = http.requests.length;
    const res = await c.call('POST', '/images', {
      params: { name: 'cred', url: `http://zuser:s3cr3t-pw@127.0.0.1:${http.port}/files/ok.raw`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.url, `http://***@127.0.0.1:${http.port}/files/ok.raw`);
    const sent = http.requests.slice(before).find((r) => r.url === '/files/ok.raw');
    assert.equal(sent?.headers.authorization, `Basic ${Buffer.from('zuser:s3cr3t-pw').toString('base64')}`, 'the credentials were used');
    const queried = await c.raw('GET', '/images?q=name=cred');
    assert.equal(queried.body.inventories[0].url, `http://***@127.0.0.1:${http.port}/files/ok.raw`);

    // A failing import with credentials: its error and the log mask them too.
    const failed = await c.call('POST', '/images', {
      params: { name: 'cred2', url: `http://zuser:s3cr3t-pw@127.0.0.1:${http.port}/files/missing.raw`, backupStorageUuids: [bs] },
    });
    assert.equal(failed.status, 503, failed.text);
    assert.ok(!failed.text.includes('s3cr3t'), failed.text);

    const db = new BetterSqlite3(join(work, 'data', 'zimage.db'), { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare('SELECT url FROM image WHERE name = ?').get('cred') as { url: string };
      assert.equal(row.url, `http://***@127.0.0.1:${http.port}/files/ok.raw`);
      const anywhere = db.prepare("SELECT COUNT(*) AS n FROM image WHERE url LIKE '%s3cr3t%'").get() as { n: number };
      assert.equal(anywhere.n, 0);
      const jobs = db.prepare("SELECT COUNT(*) AS n FROM api_job WHERE result LIKE '%s3cr3t%' OR web_hook LIKE '%s3cr3t%'").get() as {
        n: number;
      };
      assert.equal(jobs.n, 0);
    } finally {
      db.close();
    }
    for (const f of ['zimage.db', 'zimage.db-wal']) {
      const bytes = await readFile(join(work, 'data', f)).catch(() => Buffer.alloc(0));
      assert.ok(!bytes.includes('s3cr3t-pw'), `${f} holds the password in clear`);
    }
    assert.ok(!server.output().includes('s3cr3t'), 'the server log shows the password');
  });
});
