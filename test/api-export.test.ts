/**
 * ExportImageFromBackupStorage / DeleteExportedImageFromBackupStorage over real HTTP: zimage serves the
 * export itself (full GET, single Range incl. suffix, 416, HEAD, ETag = MD5), exportMd5Sum against
 * `openssl dgst`, deleted exports answer 404, and the ZStack errors of bad requests.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { opensslDigest, startInProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';
import { md5 } from './helpers/assert.js';
import { once } from './helpers/once.js';

const EXPORT_URL = /^http:\/\/127\.0\.0\.1:\d+\/zimage\/v1\/exports\/[0-9a-f]{48}\/disk_one\.raw$/;

describe('export of images', () => {
  let server: TestServer;
  let c: ZClient;
  let work: string;
  let bsA: string;
  let bsB: string;
  let source: string;
  let bytes: Buffer;
  let img: { uuid: string; installPath: string };

  before(async () => {
    work = await tempDir();
    const fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    await mkdir(join(work, 'a'));
    await mkdir(join(work, 'b'));
    source = join(fixtures, 'disk.raw');
    bytes = randomBytes(3 * 1024 * 1024 + 1234);
    await writeFile(source, bytes);
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    c = server.client;
    await c.login();
    bsA = (await c.addLocalStorage(join(work, 'a'), 'a')).uuid;
    bsB = (await c.addLocalStorage(join(work, 'b'), 'b')).uuid;
    const res = await c.call('POST', '/images', {
      params: { name: 'disk one', url: `file://${source}`, format: 'raw', backupStorageUuids: [bsA] },
    });
    assert.equal(res.status, 200, res.text);
    img = { uuid: res.body.inventory.uuid, installPath: res.body.inventory.backupStorageRefs[0].installPath };
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const exportImage = (bs: string, params: Record<string, unknown>) =>
    c.call('PUT', `/backup-storage/${bs}/actions`, { exportImageFromBackupStorage: params });
  const ref = async (uuid = img.uuid) => (await c.raw('GET', `/images/${uuid}`)).body.inventories[0].backupStorageRefs[0];
  /** The export link of `img` the download tests read (exporting again keeps the link, so the first test's is the same). */
  const exportUrl = once(async () => {
    const res = await exportImage(bsA, { imageUuid: img.uuid });
    assert.equal(res.status, 200, res.text);
    return res.body.imageUrl as string;
  });

  test('export answers an unguessable URL and the MD5 of the bytes, recorded on the ref', async () => {
    const res = await exportImage(bsA, { imageUuid: img.uuid });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.body).sort(), ['exportMd5Sum', 'imageUrl']);
    assert.match(res.body.imageUrl, EXPORT_URL);
    assert.equal(res.body.exportMd5Sum, await opensslDigest(source, 'md5'));
    const url = res.body.imageUrl as string;
    const r = await ref();
    assert.equal(r.exportUrl, url);
    assert.equal(r.exportMd5Sum, res.body.exportMd5Sum);
    // Exporting again keeps the link; the image's own format is accepted as exportFormat.
    const again = await exportImage(bsA, { imageUuid: img.uuid, exportFormat: 'raw' });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.imageUrl, url);
  });

  test('a full GET streams the stored bytes without a session', async () => {
    const url = await exportUrl();
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const got = new Uint8Array(await res.arrayBuffer());
    assert.equal(md5(got), await opensslDigest(img.installPath, 'md5'));
    assert.equal(got.length, (await readFile(img.installPath)).length);
  });

  test('single ranges: first bytes, a middle range, a suffix, an open end; unsatisfiable → 416', async () => {
    const url = await exportUrl();
    const size = bytes.length;
    const range = async (spec: string, start: number, end: number) => {
      const res = await fetch(url, { headers: { Range: spec } });
      assert.equal(res.status, 206, spec);
      assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`);
      assert.equal(res.headers.get('content-length'), String(end - start + 1));
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(start, end + 1), spec);
    };
    await range('bytes=0-99', 0, 99);
    await range('bytes=1000000-2000000', 1000000, 2000000);
    await range('bytes=-100', size - 100, size - 1);
    await range(`bytes=${size - 10}-`, size - 10, size - 1);
    await range(`bytes=${size - 5}-${size + 1000}`, size - 5, size - 1);
    for (const spec of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const res = await fetch(url, { headers: { Range: spec } });
      assert.equal(res.status, 416, spec);
      assert.equal(res.headers.get('content-range'), `bytes */${size}`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      await res.text();
    }
    // If-Range with another validator: the whole image.
    const stale = await fetch(url, { headers: { Range: 'bytes=0-9', 'If-Range': '"0000"' } });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, size);
  });

  test('HEAD gives the headers and no body', async () => {
    const url = await exportUrl();
    const res = await fetch(url, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
    const partial = await fetch(url, { method: 'HEAD', headers: { Range: 'bytes=-100' } });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-length'), '100');
  });

  test('without a recorded MD5 the export hashes the stored bytes', async () => {
    await server.app!.services.images.db.deleteFrom('image_digest').where('image_uuid', '=', img.uuid).execute();
    const res = await exportImage(bsA, { imageUuid: img.uuid });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.exportMd5Sum, await opensslDigest(img.installPath, 'md5'));
    const digests = (await c.raw('GET', `/images/${img.uuid}/digests`)).body.inventories;
    assert.deepEqual(
      digests.map((d: any) => [d.algorithm, d.digest, d.backupStorageUuid]),
      [['MD5', res.body.exportMd5Sum, bsA]],
    );
  });

  test('ZStack errors: not on that storage, unknown uuids, another format, a copy not Ready', async () => {
    let res = await exportImage(bsB, { imageUuid: img.uuid });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1006');
    assert.equal(res.body.error.details, `image[uuid: ${img.uuid}] is not on backup storage[uuid:${bsB}, name:b]`);

    res = await exportImage(bsA, { imageUuid: randomBytes(16).toString('hex') });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1003');
    assert.match(res.body.error.details, /invalid field\[imageUuid\], resource\[uuid:[0-9a-f]{32}, type:ImageVO\] not found/);

    res = await exportImage(randomBytes(16).toString('hex'), { imageUuid: img.uuid });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1003');
    assert.match(res.body.error.details, /type:BackupStorageVO/);

    res = await exportImage(bsA, { imageUuid: img.uuid, exportFormat: 'qcow2' });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1014');

    res = await exportImage(bsA, {});
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1007');

    const up = await c.call('POST', '/images', { params: { name: 'pending', url: 'upload://', backupStorageUuids: [bsB] } });
    assert.equal(up.status, 200, up.text);
    res = await exportImage(bsB, { imageUuid: up.body.inventory.uuid });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1006');
    assert.match(res.body.error.details, /is Downloading, not Ready/);
  });

  test('a bad token answers 404 in plain text', async () => {
    const url = await exportUrl();
    for (const bad of [url.replace(/[0-9a-f]{48}/, 'a'.repeat(48)), url.replace(/[0-9a-f]{48}/, 'nothex')]) {
      const res = await fetch(bad);
      assert.equal(res.status, 404);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      await res.text();
    }
  });

  test('deleting the export stops the URL and clears the ref', async () => {
    // An image and export of its own: the other tests' link stays.
    const added = await c.call('POST', '/images', {
      params: { name: 'disk one', url: `file://${source}`, format: 'raw', backupStorageUuids: [bsA] },
    });
    assert.equal(added.status, 200, added.text);
    const uuid = added.body.inventory.uuid as string;
    const exported = await exportImage(bsA, { imageUuid: uuid });
    assert.equal(exported.status, 200, exported.text);
    const url = exported.body.imageUrl as string;
    const res = await c.call('DELETE', `/backup-storage/${bsA}/exported-images/${uuid}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {});
    const gone = await fetch(url);
    assert.equal(gone.status, 404);
    assert.match(await gone.text(), /no export at this URL/);
    assert.equal((await fetch(url, { method: 'HEAD' })).status, 404);
    const r = await ref(uuid);
    assert.equal(r.exportUrl, undefined);
    assert.equal(r.exportMd5Sum, undefined);
    // Again: nothing to withdraw, still {}.
    assert.equal((await c.call('DELETE', `/backup-storage/${bsA}/exported-images/${uuid}`)).status, 200);
    // A new export is a new link.
    const fresh = await exportImage(bsA, { imageUuid: uuid });
    assert.equal(fresh.status, 200, fresh.text);
    assert.notEqual(fresh.body.imageUrl, url);
    assert.equal((await fetch(fresh.body.imageUrl, { method: 'HEAD' })).status, 200);
  });

  test('an export on a storage that vanished: the export API and the link both say so', async () => {
    const dir = join(work, 'c');
    await mkdir(dir);
    const bsC = (await c.addLocalStorage(dir, 'c')).uuid;
    const res = await c.call('POST', '/images', { params: { name: 'disk one', url: `file://${source}`, backupStorageUuids: [bsC] } });
    assert.equal(res.status, 200, res.text);
    const uuid = res.body.inventory.uuid;
    const exp = await exportImage(bsC, { imageUuid: uuid });
    assert.equal(exp.status, 200, exp.text);
    await rm(dir, { recursive: true, force: true });
    const again = await exportImage(bsC, { imageUuid: uuid });
    assert.equal(again.status, 503);
    assert.equal(again.body.error.code, 'SYS.1006');
    assert.match(again.body.error.details, /is not Connected/);
    const link = await fetch(exp.body.imageUrl);
    assert.equal(link.status, 503);
    const why = await link.text();
    assert.match(why, /Disconnected/);
    assert.ok(!why.includes(dir), 'no storage path in a data-plane answer');
  });
});
