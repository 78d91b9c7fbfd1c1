/**
 * The Ceph RBD driver against a real one-node Ceph cluster (scripts/ceph-test-cluster.sh; no mocks).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { inspect } from '../src/formats/inspect.js';
import { shutdownHashPool } from '../src/hashing/pool.js';
import { CephDriver } from '../src/storage/ceph/driver.js';
import { cephType } from '../src/storage/ceph/index.js';
import { rbdChildren, startCephCluster, type CephCluster } from './helpers/ceph.js';
import { opensslDigest, qemuInfo } from './helpers/zimage.js';
import { rejectsStorage } from './helpers/storage-assert.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let cluster: CephCluster;
let tmp: string;
let driver: CephDriver;
const saved: Record<string, unknown>[] = [];

function makeDriver(extra: Record<string, unknown> = {}): CephDriver {
  return new CephDriver({
    uuid: 'bs-test',
    url: 'ceph://rbd',
    config: { monUrls: [cluster.monUrl], poolName: 'rbd', timeoutSeconds: 5, ...extra },
    saveConfig: (p) => {
      saved.push(p);
      return Promise.resolve();
    },
  });
}

before(async () => {
  cluster = await startCephCluster({ name: 'driver', monPort: 13300 });
  console.log(`# ceph cluster started in ${cluster.startSeconds.toFixed(2)} s (package install ${cluster.installSeconds.toFixed(1)} s)`);
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'zimage-ceph-drv-'));
  driver = makeDriver();
  // The qcow2 the import, discard and delete tests store (each test stands alone).
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(tmp, 'a.qcow2'), '3G']);
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 3M', path.join(tmp, 'a.qcow2')]);
});

after(async () => {
  await driver?.close();
  await shutdownHashPool();
  await cluster?.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

async function store(uuid: string, file: string): Promise<string> {
  const target = await driver.createImport(uuid);
  await pipeline((await fsp.open(file)).createReadStream({ highWaterMark: 256 * 1024 }), target.stream);
  await target.commit();
  return target.installPath;
}

const images = async (): Promise<string[]> => JSON.parse(await cluster.rbd(['ls', '-p', 'rbd', '--format', 'json'])) as string[];

test('connect reports the pool capacity and learns fsid, monitors and pool numbers (no secrets)', async () => {
  const cap = await driver.connect();
  assert.ok(cap.totalCapacity > 0 && cap.availableCapacity > 0 && cap.availableCapacity <= cap.totalCapacity);
  const fsid = (await cluster.ceph(['fsid'])).trim();
  const learned = Object.assign({}, ...saved) as Record<string, any>;
  assert.equal(learned.fsid, fsid);
  assert.deepEqual(
    learned.mons.map((m: any) => [m.monAddr, m.status]),
    [[cluster.monUrl, 'Connected']],
  );
  assert.equal(learned.pool.replicatedSize, 1);
  const inv = cephType.inventoryFields!(
    { monUrls: [cluster.monUrl], poolName: 'rbd', cephKey: 'AQAwkwNrfc8QIBAAGAhgwYYQ24GKJz9/VlOfow==', ...learned },
    { uuid: 'b'.repeat(32), createDate: 'Nov 30, 2026 9:00:00 AM', lastOpDate: 'Nov 30, 2026 9:00:00 AM' },
  );
  assert.equal(inv.fsid, fsid);
  assert.equal(inv.poolName, 'rbd');
  assert.equal(inv.poolReplicatedSize, 1);
  assert.ok(typeof inv.poolAvailableCapacity === 'number' && typeof inv.poolUsedCapacity === 'number');
  assert.ok(!JSON.stringify(inv).includes('AQAwkwNr'), 'the key never appears in an inventory');
});

test('a qcow2 goes in as its own bytes: header read in kilobytes, digests equal the source file', async () => {
  const file = path.join(tmp, 'a.qcow2');
  const installPath = await store('qcow2img', file);
  assert.equal(installPath, 'ceph://rbd/qcow2img');
  assert.deepEqual(
    (await images()).filter((n) => n.startsWith('qcow2img')),
    ['qcow2img'],
    'no temporary image left',
  );

  const before = driver.bytesRead;
  const src = await driver.open(installPath);
  const result = await inspect(src);
  assert.equal(await src.size(), (await fsp.stat(file)).size);
  await src.close();
  const info = await qemuInfo(file, 'qcow2');
  assert.equal(result.format, 'qcow2');
  assert.equal(result.virtualSize, info['virtual-size']);
  const read = driver.bytesRead - before;
  assert.ok(read > 0 && read <= 64 * 1024, `header read ${read} bytes`);

  for (const alg of ['MD5', 'SHA1', 'SHA256', 'SHA512'] as const) {
    const got = await driver.hash(installPath, [alg]);
    assert.equal(got[alg], await opensslDigest(file, alg), alg);
  }
  const both = await driver.hash(installPath, ['MD5', 'SHA256']);
  assert.equal(both.SHA256, await opensslDigest(file, 'SHA256'));
});

test("a sparse raw image stays sparse; allocated size is rbd du's object-granular used size", async () => {
  const file = path.join(tmp, 'sparse.raw');
  const fh = await fsp.open(file, 'w');
  await fh.truncate(64 * MiB);
  await fh.write(Buffer.from('hello'), 0, 5, 4 * MiB + 10); // object 1
  await fh.write(randomBytes(MiB), 0, MiB, 20 * MiB); // object 5
  await fh.close();
  const installPath = await store('sparseimg', file);
  const allocated = await driver.allocatedSize(installPath);
  assert.equal(allocated, 8 * MiB, 'two of the sixteen 4 MiB objects exist');
  const du = JSON.parse(await cluster.rbd(['du', 'rbd/sparseimg', '--format', 'json']));
  assert.equal(du.images[0].used_size, allocated, 'the same number as rbd du');
  const src = await driver.open(installPath);
  const r = await inspect(src);
  await src.close();
  assert.equal(r.format, 'raw');
  assert.equal(r.virtualSize, 64 * MiB);
  const got = await driver.hash(installPath, ['MD5', 'SHA1']);
  assert.equal(got.MD5, await opensslDigest(file, 'MD5'));
  assert.equal(got.SHA1, await opensslDigest(file, 'SHA1'));
  // Reads: whole and ranged.
  const whole = Buffer.concat(await (await driver.readStream(installPath)).toArray());
  assert.ok(whole.equals(await fsp.readFile(file)));
  const part = Buffer.concat(await (await driver.readStream(installPath, { start: 20 * MiB - 3, end: 20 * MiB + 9 })).toArray());
  assert.ok(part.equals((await fsp.readFile(file)).subarray(20 * MiB - 3, 20 * MiB + 10)));
});

test('abort and a failing source leave nothing; discard removes committed and partial images', async () => {
  const t1 = await driver.createImport('abortme');
  t1.stream.write(randomBytes(3 * MiB));
  await t1.abort();
  assert.deepEqual(
    (await images()).filter((n) => n.startsWith('abortme')),
    [],
  );

  const t2 = await driver.createImport('brokensrc');
  const failing = Readable.from(
    (function* () {
      yield randomBytes(MiB);
      throw new Error('source broke');
    })(),
  );
  await assert.rejects(pipeline(failing, t2.stream), /source broke/);
  await t2.abort();
  assert.deepEqual(
    (await images()).filter((n) => n.startsWith('brokensrc')),
    [],
  );

  await store('discardme', path.join(tmp, 'a.qcow2'));
  const t3 = await driver.createImport('discardme2');
  await pipeline(Readable.from([Buffer.alloc(4096, 1)]), t3.stream); // written, never committed
  await cluster.rbd([
    'rename',
    `rbd/${(await images()).find((n) => n.startsWith('discardme2'))!}`,
    'rbd/discardme.zimage-part-0badc0ffee00',
  ]);
  await driver.discard('discardme');
  assert.deepEqual(
    (await images()).filter((n) => n.startsWith('discardme.') || n === 'discardme'),
    [],
  );
  await t3.abort().catch(() => undefined);
});

test('delete removes the RBD image; a missing image is a clear not-found', async () => {
  const installPath = await store('deleteme', path.join(tmp, 'a.qcow2'));
  assert.ok((await images()).includes('deleteme'));
  await driver.delete(installPath);
  assert.ok(!(await images()).includes('deleteme'));
  await driver.delete(installPath); // already gone: fine
  await rejectsStorage(driver.hash(installPath, ['MD5']), 'not-found', /RBD image "deleteme" does not exist in pool "rbd"/);
  await rejectsStorage(driver.open(installPath), 'not-found', /does not exist/);
  await rejectsStorage(driver.allocatedSize(installPath), 'not-found', /does not exist/);
  await rejectsStorage(driver.open('ceph://other/deleteme'), 'invalid', /uses pool "rbd"/);
  await rejectsStorage(driver.open('/etc/passwd'), 'invalid');
});

test('cancelling a hash stops the export at once and leaves no rbd process', async () => {
  const file = path.join(tmp, 'big.raw');
  await fsp.writeFile(file, randomBytes(96 * MiB));
  const installPath = await store('bigimg', file);
  const ac = new AbortController();
  let seen = 0;
  const p = driver.hash(installPath, ['SHA512'], {
    signal: ac.signal,
    onProgress: (done) => {
      seen = done;
      if (done > 0) ac.abort();
    },
  });
  await assert.rejects(p, (err: Error) => err.name === 'AbortError');
  assert.ok(seen < 96 * MiB);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(rbdChildren(), []);
  await driver.delete(installPath);
});

test('pool missing, monitors unreachable: clear reasons', async () => {
  const noPool = makeDriver({ poolName: 'nosuchpool' });
  await rejectsStorage(noPool.connect(), 'not-found', /pool "nosuchpool" does not exist .*create it/);
  await noPool.close();

  const dead = makeDriver({ monUrls: ['127.0.0.1:1'], timeoutSeconds: 2 });
  const t0 = Date.now();
  await rejectsStorage(dead.connect(), 'unreachable', /did not answer within 2 s.*monitors \[127\.0\.0\.1:1\]/);
  assert.ok(Date.now() - t0 < 10_000);
  await dead.close();
});

test('a full pool (quota reached) reports no available capacity and refuses imports', async () => {
  await cluster.ceph(['osd', 'pool', 'create', 'tiny', '8', '8']);
  await cluster.rbd(['pool', 'init', 'tiny']);
  await cluster.ceph(['osd', 'pool', 'set-quota', 'tiny', 'max_bytes', String(4 * MiB)]);
  const small = path.join(tmp, 'fill.raw');
  await fsp.writeFile(small, randomBytes(6 * MiB));
  await cluster.rbd(['import', '--no-progress', small, 'tiny/filler']); // quotas are enforced from reported stats, a moment later
  const tiny = makeDriver({ poolName: 'tiny' });
  let cap = await tiny.connect();
  for (let i = 0; i < 100 && cap.availableCapacity > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    cap = await tiny.connect();
  }
  assert.equal(cap.availableCapacity, 0);
  await rejectsStorage(tiny.createImport('wontfit'), 'no-space', /pool "tiny" is full/);
  await tiny.close();
});
