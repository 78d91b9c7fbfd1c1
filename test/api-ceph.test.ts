/**
 * Ceph backup storage over HTTP (ZStack's API) against real one-node Ceph clusters: one with auth none on
 * Ceph's default ports (so `monUrls: ["127.0.0.1"]` + poolName is the whole configuration), one with cephx.
 * Sizes are checked against `qemu-img info` (of the source file and of the RBD image through qemu's rbd
 * driver), digests against `openssl dgst` of the source file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shutdownHashPool } from '../src/hashing/pool.js';
import { startTestHttpServer } from './helpers/http-server.js';
import { rbdChildren, startCephCluster, type CephCluster } from './helpers/ceph.js';
import { execFileP, opensslDigest, qemuInfo, startInProcess, tempDir, type TestServer } from './helpers/zimage.js';
import { checkLifecycleOn } from './helpers/lifecycle-checks.js';
import { once } from './helpers/once.js';

const MiB = 1024 * 1024;

describe('Ceph backup storage through the API', () => {
  let plain: CephCluster;
  let secure: CephCluster;
  let server: TestServer;
  let work: string;
  let fixtures: string;
  /** The auth-none cluster's storage the image tests share, added in before. */
  let bsUuid: string;
  const qcow2 = () => join(fixtures, 'disk.qcow2');
  const raw = () => join(fixtures, 'disk.raw');

  before(async () => {
    [plain, secure] = await Promise.all([
      startCephCluster({ name: 'api', auth: 'none' }),
      startCephCluster({ name: 'api-cephx', auth: 'cephx', monPort: 23300 }),
    ]);
    console.log(
      `# ceph clusters started in ${plain.startSeconds.toFixed(2)} s / ${secure.startSeconds.toFixed(2)} s (install ${Math.max(plain.installSeconds, secure.installSeconds).toFixed(1)} s)`,
    );
    work = await tempDir('zimage-ceph-api-');
    fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    const payload = join(fixtures, 'payload.raw');
    await writeFile(payload, randomBytes(3 * MiB));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, qcow2()]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcow2(), '2G']);
    await writeFile(raw(), randomBytes(5 * MiB + 1000)); // odd length: qemu rounds the virtual size up to 512
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures, ZIMAGE_IMPORT_ALLOWED_NETWORKS: '127.0.0.0/8' });
    await server.client.login();
    const shared = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'ceph-1', monUrls: ['127.0.0.1'], poolName: 'rbd' },
    });
    assert.equal(shared.status, 200, shared.text);
    bsUuid = shared.body.inventory.uuid;
  });

  after(async () => {
    await server?.stop();
    await shutdownHashPool();
    await Promise.all([plain?.stop(), secure?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  const addImage = async (name: string, file: string, format: string, storage = bsUuid) => {
    const res = await server.client.call('POST', '/images', {
      params: { name, url: `file://${file}`, format, backupStorageUuids: [storage] },
    });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };
  const rbdImages = async (c: CephCluster): Promise<string[]> => JSON.parse(await c.rbd(['ls', '-p', 'rbd', '--format', 'json']));
  const cephStorages = async (): Promise<string[]> =>
    (await server.client.call('GET', '/backup-storage/ceph')).body.inventories.map((b: any) => b.uuid);
  /** qemu-img info of an RBD image through qemu's own rbd driver (auth none cluster). */
  const qemuRbdInfo = (image: string, format: string) =>
    qemuInfo(`rbd:rbd/${image}:mon_host=127.0.0.1:conf=/dev/null:auth_supported=none`, format);

  test('AddCephBackupStorage with monUrls ["127.0.0.1"] and poolName only; Query shows the Ceph fields, no secrets', async () => {
    const earlier = await cephStorages();
    const res = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'ceph-query', monUrls: ['127.0.0.1'], poolName: 'rbd' },
    });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    const uuid = inv.uuid as string;
    assert.equal(inv.type, 'Ceph');
    assert.equal(inv.status, 'Connected');
    assert.equal(inv.fsid, (await plain.ceph(['fsid'])).trim());
    assert.equal(inv.poolName, 'rbd');
    assert.equal(inv.poolReplicatedSize, 1);
    assert.ok(inv.poolAvailableCapacity > 0 && inv.poolUsedCapacity >= 0);
    assert.ok(inv.totalCapacity > 0 && inv.availableCapacity > 0 && inv.availableCapacity <= inv.totalCapacity);
    assert.equal(inv.mons.length, 1);
    assert.equal(inv.mons[0].hostname, '127.0.0.1');
    assert.equal(inv.mons[0].status, 'Connected');
    assert.match(inv.mons[0].monUuid, /^[0-9a-f]{32}$/);
    assert.equal(inv.mons[0].backupStorageUuid, inv.uuid);

    const list = await server.client.call('GET', '/backup-storage/ceph');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.inventories.map((b: any) => b.uuid),
      [...earlier, uuid],
    );
    const one = await server.client.call('GET', `/backup-storage/ceph/${uuid}`);
    assert.equal(one.body.inventories[0].fsid, inv.fsid);
    const all = await server.client.call('GET', '/backup-storage');
    assert.ok(all.body.inventories.some((b: any) => b.uuid === uuid && b.poolName === 'rbd'));
    const types = await server.client.call('GET', '/backup-storage/types');
    assert.ok(types.body.types.includes('Ceph'));
  });

  test("ZStack's user:password@host mon url form is accepted (host part used)", async () => {
    const res = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'ceph-zs', monUrls: ['root:password@127.0.0.1'], poolName: 'rbd' },
    });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    assert.deepEqual(
      inv.mons.map((m: any) => [m.monAddr, m.status]),
      [['127.0.0.1', 'Connected']],
    );
    assert.ok(!res.text.includes('password'));
    assert.equal((await server.client.call('DELETE', `/backup-storage/${inv.uuid}`)).status, 200);
  });

  /** The two images the size and hash tests read, added by whichever test needs them first. */
  const qcowImageAdded = once(() => addImage('ceph-qcow2', qcow2(), 'qcow2'));
  const rawImageAdded = once(() => addImage('ceph-raw', raw(), 'raw'));

  test('AddImage of a qcow2 stores its own bytes in RBD; size and MD5 match the source', async () => {
    const qcowImage = await qcowImageAdded();
    const ref = qcowImage.backupStorageRefs[0];
    assert.equal(ref.installPath, `ceph://rbd/${qcowImage.uuid}`);
    assert.ok((await rbdImages(plain)).includes(qcowImage.uuid));
    assert.equal(qcowImage.status, 'Ready');
    assert.equal(qcowImage.format, 'qcow2');
    assert.equal(qcowImage.size, (await qemuInfo(qcow2(), 'qcow2'))['virtual-size']);
    assert.equal(qcowImage.size, (await qemuRbdInfo(qcowImage.uuid, 'qcow2'))['virtual-size']);
    const du = JSON.parse(await plain.rbd(['du', `rbd/${qcowImage.uuid}`, '--format', 'json']));
    assert.equal(qcowImage.actualSize, du.images[0].used_size, 'actualSize is rbd du used_size');
    const length = (await stat(qcow2())).size;
    assert.ok(length < 4 * MiB);
    assert.equal(qcowImage.actualSize, length, 'one 4 MiB object, clipped at the image end (the qcow2 file length)');
    assert.equal(qcowImage.md5Sum, await opensslDigest(qcow2(), 'md5'));
  });

  test('AddImage of a raw file into Ceph', async () => {
    const rawImage = await rawImageAdded();
    assert.equal(rawImage.format, 'raw');
    assert.equal(rawImage.size, (await qemuInfo(raw(), 'raw'))['virtual-size']);
    assert.equal(rawImage.size, 5 * MiB + 1024);
    assert.equal(rawImage.actualSize, 5 * MiB + 1000, 'two objects, the last clipped at the image end');
    assert.equal(rawImage.md5Sum, await opensslDigest(raw(), 'md5'));
  });

  test("SyncImageSize measures the RBD copy: size = qemu-img's virtual size", async () => {
    for (const [img, file, format] of [
      [await qcowImageAdded(), qcow2(), 'qcow2'],
      [await rawImageAdded(), raw(), 'raw'],
    ] as const) {
      const res = await server.client.call('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.inventory.size, (await qemuInfo(file, format))['virtual-size']);
      assert.equal(res.body.inventory.size, (await qemuRbdInfo(img.uuid, format))['virtual-size']);
      assert.equal(res.body.inventory.actualSize, img.actualSize);
    }
  });

  for (const algorithm of ['MD5', 'SHA1', 'SHA256', 'SHA512']) {
    test(`CalculateImageHash ${algorithm} on Ceph equals openssl dgst of the source`, async () => {
      const res = await server.client.call('PUT', `/images/${(await qcowImageAdded()).uuid}/actions`, {
        calculateImageHash: { backupStorageUuid: bsUuid, algorithm },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.inventory.md5Sum, await opensslDigest(qcow2(), algorithm));
    });
  }

  test('pool missing and monitors unreachable: AddCephBackupStorage fails with the reason', async () => {
    const earlier = await cephStorages();
    const noPool = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'x', monUrls: ['127.0.0.1'], poolName: 'nosuchpool' },
    });
    assert.equal(noPool.status, 503, noPool.text);
    assert.equal(noPool.body.error.code, 'SYS.1002');
    assert.equal(noPool.body.error.cause.code, 'SYS.1006');
    assert.match(noPool.body.error.details, /pool "nosuchpool" does not exist/);

    const t0 = Date.now();
    const dead = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'y', monUrls: ['127.0.0.1:9'], poolName: 'rbd', timeoutSeconds: 2 },
    });
    assert.equal(dead.body.error.code, 'SYS.1002', dead.text);
    assert.match(dead.body.error.details, /did not answer within 2 s.*monitors \[127\.0\.0\.1:9\]/);
    assert.ok(Date.now() - t0 < 15_000);

    const bad = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'z', monUrls: ['not a host!'], poolName: 'rbd' },
    });
    assert.equal(bad.body.error.code, 'SYS.1007', bad.text);
    assert.deepEqual(await cephStorages(), earlier, 'nothing was added');
  });

  test('an image missing from the pool is a clear error for hash and size', async () => {
    const gone = await addImage('will-vanish', raw(), 'raw');
    await plain.rbd(['rm', '--no-progress', `rbd/${gone.uuid}`]);
    const hash = await server.client.call('PUT', `/images/${gone.uuid}/actions`, {
      calculateImageHash: { backupStorageUuid: bsUuid, algorithm: 'MD5' },
    });
    assert.equal(hash.body.error.code, 'SYS.1006', hash.text);
    assert.match(hash.body.error.details, new RegExp(`RBD image "${gone.uuid}" does not exist in pool "rbd"`));
    const size = await server.client.call('PUT', `/images/${gone.uuid}/actions`, { syncImageSize: {} });
    assert.equal(size.body.error.code, 'SYS.1006', size.text);
    assert.match(size.body.error.details, /does not exist/);
  });

  describe('with cephx', () => {
    /** The storage on the cephx cluster with admin's key, added by whichever test needs it first. */
    const cephxAdded = once(async () => {
      const res = await server.client.call('POST', '/backup-storage/ceph', {
        params: { name: 'ceph-cephx', monUrls: [secure.monUrl], poolName: 'rbd', cephUser: 'admin', cephKey: secure.adminKey! },
      });
      assert.equal(res.status, 200, res.text);
      return res;
    });

    test('cephx credentials in cephUser/cephKey; never returned', async () => {
      const key = secure.adminKey!;
      const res = await cephxAdded();
      assert.equal(res.status, 200, res.text);
      const cxUuid = res.body.inventory.uuid as string;
      assert.equal(res.body.inventory.fsid, (await secure.ceph(['fsid'])).trim());
      const q = await server.client.call('GET', `/backup-storage/ceph/${cxUuid}`);
      for (const text of [res.text, q.text]) {
        assert.ok(!text.includes(key), 'the key is never returned');
        assert.ok(!/cephKey|cephUser|keyring/.test(text));
      }
    });

    test('AddImage and CalculateImageHash on the cephx cluster', async () => {
      const cxUuid = (await cephxAdded()).body.inventory.uuid as string;
      const img = await addImage('cx-qcow2', qcow2(), 'qcow2', cxUuid);
      assert.equal(img.size, (await qemuInfo(qcow2(), 'qcow2'))['virtual-size']);
      assert.ok((await rbdImages(secure)).includes(img.uuid));
      const res = await server.client.call('PUT', `/images/${img.uuid}/actions`, {
        calculateImageHash: { backupStorageUuid: cxUuid, algorithm: 'SHA256' },
      });
      assert.equal(res.body.inventory.md5Sum, await opensslDigest(qcow2(), 'SHA256'), res.text);
    });

    test('wrong key, missing key and a read-only user are permission errors', async () => {
      const wrong = await server.client.call('POST', '/backup-storage/ceph', {
        params: { name: 'w', monUrls: [secure.monUrl], poolName: 'rbd', cephKey: 'AQApkwNrJdRzLhAAq7+rqEApp8NRmHQU3iviUw==' },
      });
      assert.equal(wrong.body.error.code, 'SYS.1002', wrong.text);
      assert.match(wrong.body.error.details, /permission denied for client\.admin.*refused the cephx key/);
      const none = await server.client.call('POST', '/backup-storage/ceph', {
        params: { name: 'n', monUrls: [secure.monUrl], poolName: 'rbd' },
      });
      assert.match(none.body.error.details, /requires cephx authentication/, none.text);
      const roKey = (
        await secure.ceph(['auth', 'get-or-create-key', 'client.ro', 'mon', 'profile rbd', 'osd', 'profile rbd-read-only pool=rbd'])
      ).trim();
      const ro = await server.client.call('POST', '/backup-storage/ceph', {
        params: { name: 'r', monUrls: [secure.monUrl], poolName: 'rbd', cephUser: 'client.ro', cephKey: roKey },
      });
      assert.match(ro.body.error.details, /permission denied for client\.ro \(cannot write to pool "rbd"\)/, ro.text);
    });
  });

  test('upload, export with Range, delete / recover / expunge on the Ceph storage', async () => {
    await checkLifecycleOn(server.client, bsUuid, randomBytes(5 * MiB + 77), async (p) =>
      (await rbdImages(plain)).includes(p.split('/').pop()!),
    );
  });

  test('cancelling an AddImage mid-copy (streamed through rbd import -) ends it with SYS.1017: no RBD image, no image row, no rbd process', async () => {
    // An http source that sends 8 MiB and then stalls: the copy is certainly under way and not finished when
    // the cancel arrives. (A local file goes straight to rbd; its cancel is in api-ceph-file-import.test.ts.)
    const http = await startTestHttpServer({ 'cancel-me.raw': randomBytes(64 * MiB) });
    try {
      const before = await rbdImages(plain);
      const c = server.client;
      const started = await c.raw('POST', '/images', {
        params: { name: 'cancel-me', url: http.url(`/stall/cancel-me.raw?after=${8 * MiB}`), format: 'raw', backupStorageUuids: [bsUuid] },
      });
      assert.equal(started.status, 202, started.text);
      const job = (started.body.location as string).split('/').pop()!;
      let done = 0;
      for (let i = 0; i < 4000 && done === 0; i++) {
        done = (await c.raw('GET', `/task-progresses/${job}`)).body?.inventories?.[0]?.opaque?.bytesDone ?? 0;
        if (done === 0) await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(done > 0 && done <= 8 * MiB, `the copy had started and stays short of the stall point (${done} bytes)`);
      assert.equal(rbdChildren().length, 1, 'rbd import - is running');
      const cancel = await c.call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
      assert.equal(cancel.status, 200, cancel.text);
      const end = await c.poll(started.body.location);
      assert.equal(end.body.error?.code, 'SYS.1017', end.text);
      assert.deepEqual(await rbdImages(plain), before, 'no image and no .zimage-part- left in the pool');
      const rows = await c.call('GET', '/images?q=name=cancel-me');
      assert.equal(rows.body.inventories.length, 0, rows.text);
      assert.deepEqual(rbdChildren(), []);
    } finally {
      await http.close();
    }
  });

  // Last: it crashes the auth-none cluster the tests above share.
  test('the cluster stopping mid-hash ends the job with a clear error and no rbd process left', async () => {
    const big = join(fixtures, 'big.raw');
    await writeFile(big, randomBytes(512 * MiB));
    const added = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'ceph-short', monUrls: ['127.0.0.1'], poolName: 'rbd', timeoutSeconds: 3 },
    });
    assert.equal(added.status, 200, added.text);
    const shortUuid = added.body.inventory.uuid;
    const img = await addImage('big', big, 'raw', shortUuid);
    await rm(big);
    const jobUuid = randomBytes(16).toString('hex');
    const answer = server.client.call(
      'PUT',
      `/images/${img.uuid}/actions`,
      { calculateImageHash: { backupStorageUuid: shortUuid, algorithm: 'SHA512' } },
      { 'X-Job-UUID': jobUuid },
      60_000,
    );
    let done = 0;
    // Poll until the first bytes are hashed (starting the export may take seconds on a loaded machine).
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && done === 0;) {
      const p = await server.client.raw('GET', `/task-progresses/${jobUuid}`);
      done = p.body?.inventories?.[0]?.opaque?.bytesDone ?? 0;
      if (done === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(done > 0 && done < 512 * MiB, `hashing had started (${done} bytes)`);
    plain.crash();
    const t0 = Date.now();
    const end = await answer;
    assert.equal(end.body.error?.code, 'SYS.1006', end.text);
    assert.match(end.body.error.details, /did not answer within 3 s|Connection refused|Ceph/);
    assert.ok(Date.now() - t0 < 30_000, `ended after ${Date.now() - t0} ms`);
    console.log(`# mid-hash: job ended ${Date.now() - t0} ms after the crash: ${end.body.error.details}`);
    assert.deepEqual(rbdChildren(), []);
    const size = await server.client.call('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} });
    assert.equal(size.body.error?.code, 'SYS.1006', size.text);
    assert.match(size.body.error.details, /No connected backup storage|did not answer within 3 s/);
  });
});
