/**
 * AddImage of a local file into Ceph through the direct path (services/file-import.ts, ceph/file-import.ts):
 * rbd reads the verified file itself through its descriptor 3 while zimage hashes the same inode. Checked
 * against the tools: the stored bytes (`rbd export`, then `openssl dgst`), sizes (`qemu-img info`, `rbd info`),
 * the recorded digests (openssl), the detected format; cancel and a file changing mid-import leave nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shutdownHashPool } from '../src/hashing/pool.js';
import { rbdChildren, startCephCluster, type CephCluster } from './helpers/ceph.js';
import { execFileP, opensslDigest, qemuInfo, startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

const MiB = 1024 * 1024;

describe('Ceph AddImage of a local file: rbd reads the file itself', () => {
  let cluster: CephCluster;
  let server: TestServer;
  let work: string;
  let fixtures: string;
  let bsUuid: string;

  before(async () => {
    cluster = await startCephCluster({ name: 'cephfile', monPort: 8330 });
    work = await tempDir('zimage-cephfile-');
    fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    await server.client.login();
    const res = await server.client.call('POST', '/backup-storage/ceph', {
      params: { name: 'cephfile', monUrls: [cluster.monUrl], poolName: 'rbd' },
    });
    assert.equal(res.status, 200, res.text);
    bsUuid = res.body.inventory.uuid;
  });

  after(async () => {
    await server?.stop();
    await shutdownHashPool();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const rbdImages = async (): Promise<string[]> => JSON.parse(await cluster.rbd(['ls', '-p', 'rbd', '--format', 'json']));
  const addImage = async (name: string, file: string, format?: string) => {
    const res = await server.client.call('POST', '/images', {
      params: { name, url: `file://${file}`, ...(format ? { format } : {}), backupStorageUuids: [bsUuid] },
    });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };
  /** The stored bytes' digest: `rbd export` to a file, then `openssl dgst`. */
  const storedDigest = async (image: string, alg: string): Promise<string> => {
    const out = join(work, `${image}.export`);
    await cluster.rbd(['export', '--no-progress', `rbd/${image}`, out]);
    try {
      return await opensslDigest(out, alg);
    } finally {
      await rm(out);
    }
  };
  const importDigests = async (image: string): Promise<Record<string, string>> => {
    const rows = await server.app!.db.db.selectFrom('image_digest').selectAll().where('image_uuid', '=', image).execute();
    return Object.fromEntries(rows.filter((r) => r.source === 'import').map((r) => [r.algorithm, r.digest]));
  };
  /**
   * Starts an AddImage, finds its rbd child and pauses it (SIGSTOP: the import cannot end before the test
   * acts), then waits until some bytes are hashed. Returns the job location, the rbd pid and its arguments.
   */
  const startAdd = async (name: string, file: string) => {
    const c = server.client;
    // Not awaited yet: the answer waits a moment for the job, which must not end before rbd is paused.
    const answer = c.raw('POST', '/images', {
      params: { name, url: `file://${file}`, format: 'raw', backupStorageUuids: [bsUuid] },
    });
    let rbd: number[] = [];
    for (let i = 0; i < 4000 && rbd.length === 0; i++) {
      rbd = rbdChildren();
      if (rbd.length === 0) await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(rbd.length, 1, 'one rbd process imports');
    const pid = rbd[0]!;
    process.kill(pid, 'SIGSTOP');
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    const started = await answer;
    assert.equal(started.status, 202, started.text);
    const location = started.body.location as string;
    let done = 0;
    for (let i = 0; i < 4000 && done === 0; i++) {
      done = (await c.raw('GET', `/task-progresses/${location.split('/').pop()!}`)).body?.inventories?.[0]?.opaque?.bytesDone ?? 0;
      if (done === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(done > 0, 'the hashing runs beside rbd');
    return { location, job: location.split('/').pop()!, pid, cmdline };
  };

  test('a raw file: identical bytes in RBD, sizes as qemu-img and rbd info say, MD5 and SHA-256 as openssl computes', async () => {
    const file = join(fixtures, 'disk.raw');
    await writeFile(file, randomBytes(24 * MiB + 1000));
    const img = await addImage('raw-file', file, 'raw');
    assert.equal(img.status, 'Ready');
    assert.equal(img.format, 'raw');
    assert.equal(img.backupStorageRefs[0].installPath, `ceph://rbd/${img.uuid}`);
    assert.deepEqual(await rbdImages(), [img.uuid], 'only the final image, no .zimage-part- left');
    const length = (await stat(file)).size;
    const info = JSON.parse(await cluster.rbd(['info', `rbd/${img.uuid}`, '--format', 'json']));
    assert.equal(info.size, length, 'rbd info size is the file size');
    assert.equal(img.size, (await qemuInfo(file, 'raw'))['virtual-size']);
    const md5 = await opensslDigest(file, 'MD5');
    assert.equal(await storedDigest(img.uuid, 'MD5'), md5, 'the stored bytes are the file');
    assert.equal(img.md5Sum, md5);
    assert.deepEqual(await importDigests(img.uuid), { MD5: md5, SHA256: await opensslDigest(file, 'SHA256') });
    assert.deepEqual(rbdChildren(), []);
  });

  test('a qcow2 file: format detected (none declared), virtual size as qemu-img says, bytes identical', async () => {
    const payload = join(work, 'payload.raw');
    const file = join(fixtures, 'disk.qcow2');
    await writeFile(payload, randomBytes(3 * MiB));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, file]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', file, '2G']);
    const img = await addImage('qcow2-file', file);
    assert.equal(img.status, 'Ready');
    assert.equal(img.format, 'qcow2');
    assert.equal(img.size, (await qemuInfo(file, 'qcow2'))['virtual-size']);
    const info = JSON.parse(await cluster.rbd(['info', `rbd/${img.uuid}`, '--format', 'json']));
    assert.equal(info.size, (await stat(file)).size);
    const md5 = await opensslDigest(file, 'MD5');
    assert.equal(await storedDigest(img.uuid, 'MD5'), md5);
    assert.equal(img.md5Sum, md5);
    assert.equal((await importDigests(img.uuid)).SHA256, await opensslDigest(file, 'SHA256'));
  });

  test('cancel mid-import: SYS.1017, no RBD image (partial or final), no image row, no rbd process', async () => {
    const big = join(fixtures, 'cancel-me.raw');
    await writeFile(big, randomBytes(128 * MiB));
    const before = await rbdImages();
    const { location, job, cmdline } = await startAdd('cancel-me', big);
    assert.ok(cmdline.includes('/dev/fd/3'), `rbd reads the file itself: ${cmdline.join(' ')}`);
    assert.ok(!cmdline.includes('-'), 'not from stdin');
    const cancel = await server.client.call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(cancel.status, 200, cancel.text);
    const end = await server.client.poll(location);
    assert.equal(end.body.error?.code, 'SYS.1017', end.text);
    await rm(big);
    assert.deepEqual(await rbdImages(), before, 'no image and no .zimage-part- left in the pool');
    const rows = await server.client.call('GET', '/images?q=name=cancel-me');
    assert.equal(rows.body.inventories.length, 0, rows.text);
    assert.deepEqual(rbdChildren(), []);
  });

  test('a file written to during the import: an error naming the change, nothing left behind', async () => {
    const big = join(fixtures, 'changing.raw');
    await writeFile(big, randomBytes(128 * MiB));
    const before = await rbdImages();
    const { location, pid } = await startAdd('changing', big);
    const fh = await open(big, 'r+');
    await fh.write(randomBytes(4096), 0, 4096, 100 * MiB); // same size: only mtime/ctime tell
    await fh.close();
    process.kill(pid, 'SIGCONT');
    const end = await server.client.poll(location);
    assert.equal(end.body.error?.code, 'BS.1000', end.text);
    assert.match(JSON.stringify(end.body.error), /changed while it was being imported/);
    await rm(big);
    assert.deepEqual(await rbdImages(), before, 'no image and no .zimage-part- left in the pool');
    const rows = await server.client.call('GET', '/images?q=name=changing');
    assert.equal(rows.body.inventories.length, 0, rows.text);
    assert.deepEqual(rbdChildren(), []);
  });
});
