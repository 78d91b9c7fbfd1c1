/**
 * No empty images: a 0-byte source is refused with "the image is empty" — SYS.1007 when the size is known
 * before the copy (a 0-byte file, Content-Length: 0), SYS.1006 when found while running (a chunked body
 * that ends at once, an upload completed with no bytes) — and leaves no image row, no ref row, no bytes.
 */
import assert from 'node:assert/strict';
import BetterSqlite3 from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startProcess, tempDir, type ZClient } from './helpers/zimage.js';
import { assertZStackError } from './helpers/assert.js';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out.sort();
}

describe('empty images are refused', () => {
  let server: Awaited<ReturnType<typeof startProcess>>;
  let http: TestHttpServer;
  let c: ZClient;
  let work: string;
  let roots: string;
  let storageDir: string;
  let bs: string;
  let storedBefore: string[];

  before(async () => {
    work = await tempDir('zimage-empty-');
    roots = join(work, 'images');
    storageDir = join(work, 'storage');
    await mkdir(roots);
    await mkdir(storageDir);
    await writeFile(join(roots, 'empty.raw'), Buffer.alloc(0));
    await writeFile(join(roots, 'one.raw'), randomBytes(1));
    http = await startTestHttpServer({ 'empty.raw': Buffer.alloc(0), 'one.raw': randomBytes(1) });
    server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: roots });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(storageDir)).uuid;
    storedBefore = await filesUnder(storageDir);
  });

  after(async () => {
    await server?.stop();
    await http?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Rows the database holds for images called `name`, and for refs of any image called so. */
  const rows = (name: string) => {
    const db = new BetterSqlite3(join(server.dataDir, 'zimage.db'), { readonly: true, fileMustExist: true });
    try {
      const images = db.prepare('SELECT uuid FROM image WHERE name = ?').all(name) as Array<{ uuid: string }>;
      const refs = db
        .prepare('SELECT count(*) AS n FROM image_backup_storage_ref r JOIN image i ON i.uuid = r.image_uuid WHERE i.name = ?')
        .get(name) as { n: number };
      const orphans = db
        .prepare('SELECT count(*) AS n FROM image_backup_storage_ref WHERE image_uuid NOT IN (SELECT uuid FROM image)')
        .get() as { n: number };
      return { images: images.length, refs: refs.n + orphans.n };
    } finally {
      db.close();
    }
  };

  const assertNothingLeft = async (name: string) => {
    assert.deepEqual(rows(name), { images: 0, refs: 0 }, `rows left for ${name}`);
    assert.deepEqual(await filesUnder(storageDir), storedBefore, 'bytes left in the storage directory');
  };

  const addFails = async (name: string, url: string, code: string) => {
    const res = await c.call('POST', '/images', { params: { name, url, format: 'raw', backupStorageUuids: [bs] } });
    assertZStackError(res, code, /the image is empty/);
    await assertNothingLeft(name);
  };

  test('a 0-byte file is SYS.1007 before the copy starts', async () => {
    await addFails('empty-file', `file://${join(roots, 'empty.raw')}`, 'SYS.1007');
    // One byte is an image (a raw one): the refusal is about emptiness, not size.
    const one = await c.call('POST', '/images', {
      params: { name: 'one-file', url: `file://${join(roots, 'one.raw')}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.inventory.status, 'Ready');
    storedBefore = await filesUnder(storageDir);
  });

  test('HTTP with Content-Length: 0 is SYS.1007', async () => {
    const probe = await fetch(http.url('/files/empty.raw'));
    assert.equal(probe.headers.get('content-length'), '0');
    await probe.arrayBuffer();
    await addFails('empty-http', http.url('/files/empty.raw'), 'SYS.1007');
  });

  test('a chunked body that ends at once is SYS.1006', async () => {
    const probe = await fetch(http.url('/chunked/empty.raw'));
    assert.equal(probe.headers.get('transfer-encoding'), 'chunked');
    assert.equal(probe.headers.get('content-length'), null);
    await probe.arrayBuffer();
    await addFails('empty-chunked', http.url('/chunked/empty.raw'), 'SYS.1006');
  });

  for (const [label, headers] of [
    ['X-Upload-Complete: true', { 'X-Upload-Complete': 'true' }],
    ['X-Image-Size: 0', { 'X-Image-Size': '0' }],
  ] as const) {
    test(`an upload completed with no bytes (${label}) is refused and removed`, async () => {
      const name = `empty-upload-${label.split(':')[0]}`;
      const added = await c.call('POST', '/images', { params: { name, url: `upload://${name}`, format: 'raw', backupStorageUuids: [bs] } });
      assert.equal(added.status, 200, added.text);
      const inv = added.body.inventory;
      const res = await fetch(inv.url, {
        method: 'PUT',
        body: new Uint8Array(0),
        headers: { 'Content-Type': 'application/octet-stream', ...headers },
      });
      const text = await res.text();
      assert.equal(res.status, 422, text);
      assert.match(text, /the image is empty/);
      const details = await c.raw('GET', `/images/upload-job/details/${inv.uuid}`);
      assert.equal(details.status, 200, details.text);
      const d = details.body.existingJobDetails[0];
      assert.equal(d.longJobState, 'Failed');
      assert.equal(d.error.code, 'SYS.1006');
      assert.match(d.error.details, /the image is empty/);
      await assertNothingLeft(name);
    });
  }
});
