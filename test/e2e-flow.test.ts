/**
 * The whole seed flow over real HTTP against a real `zimage serve` process: login → add backup storage →
 * add a qcow2 made by qemu-img (file://) and a raw file (http://) → SyncImageSize → CalculateImageHash with
 * every algorithm. Sizes are checked against `qemu-img info`, digests against `openssl dgst`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { once } from './helpers/once.js';
import { execFileP, opensslDigest, qemuInfo, startProcess, tempDir, type TestServer } from './helpers/zimage.js';

const ZSTACK_DATE = /^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$/;

describe('seed flow against a real zimage process', () => {
  let server: TestServer;
  let http: TestHttpServer;
  let work: string;
  let storageDir: string;
  const qcow2 = () => join(work, 'fixtures', 'disk.qcow2');
  const raw = () => join(work, 'fixtures', 'disk.raw');

  before(async () => {
    work = await tempDir();
    await mkdir(join(work, 'fixtures'));
    storageDir = join(work, 'storage');
    await mkdir(storageDir);
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2(), '1G']);
    // Real data inside the qcow2, so its digest is of more than a header.
    const payload = join(work, 'fixtures', 'payload.raw');
    await writeFile(payload, randomBytes(3 * 1024 * 1024));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, qcow2()]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcow2(), '1G']);
    await writeFile(raw(), randomBytes(5 * 1024 * 1024 + 1000)); // odd length: qemu rounds up to 512
    http = await startTestHttpServer({ 'disk.raw': { path: raw() } });
    server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    await server.client.login();
  });

  after(async () => {
    await server?.stop();
    await http?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('login with the SHA-512 wire password gives a session inventory', async () => {
    const session = await server.client.login();
    assert.match(session, /^[0-9a-f]{32}$/);
    const valid = await server.client.raw('GET', `/accounts/sessions/${session}/valid`);
    assert.equal(valid.status, 200);
    assert.deepEqual(valid.body, { valid: true });
  });

  /** The local-directory storage every image goes to, added by whichever test needs it first. */
  const storage = once(() => server.client.addLocalStorage(storageDir, 'local-1'));
  const addImage = async (params: Record<string, unknown>) => {
    const res = await server.client.call('POST', '/images', { params: { ...params, backupStorageUuids: [(await storage()).uuid] } });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };
  /** Both images, always added in this order (QueryImage pages by createDate): their answers are asserted by the AddImage tests. */
  const images = once(async () => {
    const qcow = await addImage({ name: 'tiny-qcow2', url: `file://${qcow2()}`, format: 'qcow2' });
    const raw = await addImage({ name: 'odd-raw', url: http.url('/files/disk.raw'), format: 'raw', mediaType: 'DataVolumeTemplate' });
    return { qcow, raw };
  });

  test('add a local-directory backup storage', async () => {
    const inv = await storage();
    const bsUuid = inv.uuid;
    assert.match(inv.uuid, /^[0-9a-f]{32}$/);
    assert.equal(inv.type, 'LocalBackupStorage');
    assert.equal(inv.status, 'Connected');
    assert.equal(inv.state, 'Enabled');
    assert.ok(inv.totalCapacity > 0 && inv.availableCapacity > 0 && inv.availableCapacity <= inv.totalCapacity);
    assert.match(inv.createDate, ZSTACK_DATE);
    const list = await server.client.call('GET', '/backup-storage');
    assert.equal(list.status, 200);
    assert.ok(list.body.inventories.some((b: any) => b.uuid === bsUuid));
  });

  test('AddImage of a qcow2 from file:// records measured sizes and the MD5 of the bytes', async () => {
    const qcowImage = (await images()).qcow;
    const ref = qcowImage.backupStorageRefs[0];
    const stored = ref.installPath as string;
    assert.ok(stored.startsWith(storageDir), `${stored} is inside the storage directory`);
    const info = await qemuInfo(stored, 'qcow2');
    assert.equal(qcowImage.status, 'Ready');
    assert.equal(qcowImage.format, 'qcow2');
    assert.equal(qcowImage.size, info['virtual-size']);
    assert.equal(qcowImage.size, 1024 ** 3);
    assert.equal(qcowImage.actualSize, info['actual-size']);
    assert.equal(qcowImage.md5Sum, await opensslDigest(qcow2(), 'md5'));
    assert.equal(ref.status, 'Ready');
    assert.equal(ref.backupStorageUuid, (await storage()).uuid);
    for (const k of ['createDate', 'lastOpDate']) assert.match(qcowImage[k], ZSTACK_DATE);
  });

  test('AddImage of a raw file from http:// detects raw and measures it', async () => {
    const rawImage = (await images()).raw;
    const stored = rawImage.backupStorageRefs[0].installPath;
    const info = await qemuInfo(stored, 'raw');
    assert.equal(rawImage.size, info['virtual-size']);
    assert.equal(rawImage.size, 5 * 1024 * 1024 + 1024);
    assert.equal(rawImage.actualSize, info['actual-size']);
    assert.equal(rawImage.md5Sum, await opensslDigest(raw(), 'md5'));
    assert.equal(rawImage.mediaType, 'DataVolumeTemplate');
    assert.equal(rawImage.platform, undefined, 'no platform default for data volume templates; nulls are omitted');
  });

  test("SyncImageSize in the seed page's literal form (no action key, only tags)", async () => {
    const qcowImage = (await images()).qcow;
    const res = await server.client.call('PUT', `/images/${qcowImage.uuid}/actions`, { systemTags: [], userTags: [] });
    assert.equal(res.status, 200, res.text);
    const info = await qemuInfo(qcowImage.backupStorageRefs[0].installPath, 'qcow2');
    assert.equal(res.body.inventory.size, info['virtual-size']);
    assert.equal(res.body.inventory.actualSize, info['actual-size']);
    assert.equal(typeof res.body.inventory.size, 'number');
  });

  test('SyncImageSize in the SDK form re-measures after the stored bytes change', async () => {
    const rawImage = (await images()).raw;
    const stored = rawImage.backupStorageRefs[0].installPath;
    await execFileP('truncate', ['-s', String(64 * 1024 * 1024), stored]);
    const res = await server.client.call('PUT', `/images/${rawImage.uuid}/actions`, { syncImageSize: {} });
    assert.equal(res.status, 200, res.text);
    const info = await qemuInfo(stored, 'raw');
    assert.equal(res.body.inventory.size, 64 * 1024 * 1024);
    assert.equal(res.body.inventory.size, info['virtual-size']);
    assert.equal(res.body.inventory.actualSize, info['actual-size']);
  });

  for (const algorithm of ['MD5', 'SHA1', 'SHA256', 'SHA512', 'SM3']) {
    test(`CalculateImageHash ${algorithm} equals openssl dgst`, async () => {
      const [qcowImage, bsUuid] = [(await images()).qcow, (await storage()).uuid];
      const res = await server.client.call('PUT', `/images/${qcowImage.uuid}/actions`, {
        calculateImageHash: { backupStorageUuid: bsUuid, algorithm: algorithm.toLowerCase() },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.success, true);
      assert.equal(res.body.inventory.md5Sum, await opensslDigest(qcowImage.backupStorageRefs[0].installPath, algorithm));
    });
  }

  test("CalculateImageHash with the seed page's lower-case key `calculateimagehash`", async () => {
    const [rawImage, bsUuid] = [(await images()).raw, (await storage()).uuid];
    const res = await server.client.call('PUT', `/images/${rawImage.uuid}/actions`, {
      calculateimagehash: { backupStorageUuid: bsUuid, algorithm: 'SHA256' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.md5Sum, await opensslDigest(rawImage.backupStorageRefs[0].installPath, 'sha256'));
  });

  test('QueryImage with q, limit, start and replyWithCount', async () => {
    const { qcow: qcowImage, raw: rawImage } = await images();
    const byName = await server.client.call('GET', '/images?q=name=tiny-qcow2');
    assert.equal(byName.status, 200);
    assert.deepEqual(
      byName.body.inventories.map((i: any) => i.uuid),
      [qcowImage.uuid],
    );
    const paged = await server.client.call('GET', '/images?limit=1&start=1&replyWithCount=true&sort=%2BcreateDate');
    assert.equal(paged.body.total, 2);
    assert.equal(paged.body.inventories.length, 1);
    assert.equal(paged.body.inventories[0].uuid, rawImage.uuid);
    const one = await server.client.call('GET', `/images/${rawImage.uuid}`);
    assert.equal(one.body.inventories.length, 1);
    assert.equal(one.body.inventories[0].format, 'raw');
    const none = await server.client.call('GET', `/images/${'0'.repeat(32)}`);
    assert.deepEqual(none.body.inventories, []);
  });
});
