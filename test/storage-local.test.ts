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
import { shutdownHashPool } from '../src/hashing/pool.js';
import { StorageError } from '../src/lib/errors.js';
import { LocalDirectoryDriver } from '../src/storage/local/driver.js';
import { readAll, rejectsKind } from './helpers/assert.js';

const run = promisify(execFile);

let tmp: string;
let root: string;
let driver: LocalDirectoryDriver;

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'zimage-local-'));
  root = path.join(tmp, 'bs');
  await fsp.mkdir(root);
  driver = new LocalDirectoryDriver(root);
  await driver.connect();
});

after(async () => {
  // Multi-algorithm hashing uses worker threads; end them so the test process exits at once.
  await shutdownHashPool();
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function rejectsStorage(p: Promise<unknown>, kind: StorageError['kind'], re?: RegExp): Promise<StorageError> {
  const caught = await rejectsKind(p, StorageError, kind, re);
  assert.ok(!/\n\s+at /.test(caught.message), 'no stack trace in the message');
  return caught;
}

async function store(uuid: string, bytes: Buffer): Promise<string> {
  const target = await driver.createImport(uuid);
  await pipeline(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), target.stream);
  await target.commit();
  return target.installPath;
}

/** Mounts a tmpfs (extra options e.g. 'ro'); undefined when this sandbox does not allow mounting. */
async function mountTmpfs(dir: string, options: string): Promise<(() => Promise<void>) | undefined> {
  await fsp.mkdir(dir, { recursive: true });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  } catch {
    return undefined;
  }
  return async () => {
    await run('umount', [dir]);
  };
}

test('connect on a good directory reports statfs capacity', async () => {
  const cap = await driver.connect();
  const fs = await fsp.statfs(root);
  assert.ok(cap.totalCapacity > 0 && cap.availableCapacity > 0);
  assert.equal(cap.totalCapacity, fs.blocks * fs.bsize);
  // Available space moves with other writers on the machine; allow 64 MiB of drift.
  assert.ok(Math.abs(cap.availableCapacity - fs.bavail * fs.bsize) < 64 * 2 ** 20);
  assert.ok(cap.availableCapacity <= cap.totalCapacity);
  // The probe file is gone.
  assert.deepEqual(
    (await fsp.readdir(root)).filter((n) => n.startsWith('.zimage-probe')),
    [],
  );
});

test('connect on a missing directory or a file is unreachable, naming the path', async () => {
  const missing = path.join(tmp, 'no-such-dir');
  await rejectsStorage(new LocalDirectoryDriver(missing).connect(), 'unreachable', new RegExp(`${missing} does not exist.*mkdir -p`));
  const file = path.join(tmp, 'a-file');
  await fsp.writeFile(file, 'x');
  await rejectsStorage(new LocalDirectoryDriver(file).connect(), 'unreachable', new RegExp(`${file} is not a directory`));
  await rejectsStorage(new LocalDirectoryDriver(path.join(file, 'below')).connect(), 'unreachable', /does not exist/);
  assert.throws(
    () => new LocalDirectoryDriver('relative/dir'),
    (e: unknown) => e instanceof StorageError && e.kind === 'invalid',
  );
});

test('connect on an unwritable directory is a permission error', async (t) => {
  // Tests run as root, for whom chmod 0555 changes nothing; a read-only tmpfs stops root too.
  const dir = path.join(tmp, 'ro');
  const unmount = await mountTmpfs(dir, 'ro,size=64k');
  if (!unmount) return t.skip('mounting a read-only tmpfs is not permitted here; unwritable directories cannot be simulated for root');
  try {
    await rejectsStorage(new LocalDirectoryDriver(dir).connect(), 'permission', new RegExp(`${dir} is not writable.*read-only`));
  } finally {
    await unmount();
  }
});

test('import then commit: the file holds the same bytes; no temporary file is left', async () => {
  const bytes = randomBytes(3 * 2 ** 20 + 17);
  const uuid = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const target = await driver.createImport(uuid, { expectedSize: bytes.length });
  assert.equal(target.installPath, path.join(root, 'images', uuid, `${uuid}.template`));
  const dir = path.dirname(target.installPath);
  await pipeline(Readable.from([bytes]), target.stream);
  // Before commit only the dot-prefixed temporary name exists.
  const during = await fsp.readdir(dir);
  assert.equal(during.length, 1);
  assert.match(during[0] ?? '', new RegExp(`^\\.${uuid}\\.template\\..+\\.part$`));
  await assert.rejects(fsp.stat(target.installPath), { code: 'ENOENT' });
  await target.commit();
  assert.ok((await fsp.readFile(target.installPath)).equals(bytes));
  assert.deepEqual(await fsp.readdir(dir), [`${uuid}.template`]);
  await target.commit(); // idempotent
  await target.abort(); // after commit: nothing to undo
  assert.ok((await fsp.readFile(target.installPath)).equals(bytes));
});

test('commit ends a stream the caller left open', async () => {
  const target = await driver.createImport('open-ended');
  target.stream.write(Buffer.from('abc'));
  target.stream.write(Buffer.from('def'));
  await target.commit();
  assert.equal(await fsp.readFile(target.installPath, 'utf8'), 'abcdef');
});

test('abort leaves nothing behind: no temporary file, no empty directory', async () => {
  const target = await driver.createImport('aborted-one');
  const dir = path.dirname(target.installPath);
  target.stream.write(randomBytes(100_000));
  await new Promise((r) => setImmediate(r));
  await target.abort();
  await assert.rejects(fsp.stat(dir), { code: 'ENOENT' });
  assert.ok(target.stream.destroyed);
  await rejectsStorage(target.commit(), 'invalid', /aborted/);
  // Aborting a re-import keeps the committed image.
  const installPath = await store('kept', Buffer.from('kept bytes'));
  const again = await driver.createImport('kept');
  await pipeline(Readable.from([Buffer.from('new')]), again.stream);
  await again.abort();
  assert.equal(await fsp.readFile(installPath, 'utf8'), 'kept bytes');
  assert.deepEqual(await fsp.readdir(path.dirname(installPath)), ['kept.template']);
});

test('createImport refuses bad uuids and sizes beyond the free space', async () => {
  for (const bad of ['../escape', 'a/b', '', '.hidden', 'x'.repeat(200)]) {
    await rejectsStorage(driver.createImport(bad), 'invalid');
  }
  await rejectsStorage(driver.createImport('too-big', { expectedSize: 2 ** 60 }), 'no-space', /bytes free but the image needs/);
  await assert.rejects(fsp.stat(path.join(root, 'images', 'too-big')), { code: 'ENOENT' });
});

async function qemuActualSize(file: string): Promise<number> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', file]);
  return (JSON.parse(stdout) as { 'actual-size': number })['actual-size'];
}

test('allocatedSize equals qemu-img actual-size (sparse raw, dense raw, qcow2)', async () => {
  const sparse = await store('sparse', Buffer.from('header'));
  await fsp.truncate(sparse, 2 ** 30);
  const dense = await store('dense', randomBytes(2 ** 20 + 4097));
  const qcowUuid = 'qcow';
  const qcow = driver.installPathOf(qcowUuid);
  await fsp.mkdir(path.dirname(qcow), { recursive: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '1G']);
  for (const p of [sparse, dense, qcow]) {
    const ours = await driver.allocatedSize(p);
    assert.equal(ours, await qemuActualSize(p), p);
  }
  assert.equal((await fsp.stat(sparse)).size, 2 ** 30);
  assert.ok((await driver.allocatedSize(sparse)) < 2 ** 20, 'a sparse file is measured by its allocated blocks');
  assert.ok((await driver.allocatedSize(dense)) >= 2 ** 20 + 4097);
  await rejectsStorage(driver.allocatedSize(driver.installPathOf('never-stored')), 'not-found', /does not exist/);
});

test('install paths must stay inside the root (.., symbolic links, absolute paths)', async () => {
  const outsideDir = path.join(tmp, 'outside');
  await fsp.mkdir(outsideDir, { recursive: true });
  const outsideFile = path.join(outsideDir, 'victim');
  await fsp.writeFile(outsideFile, 'do not touch');
  const imagesDir = path.join(root, 'images');
  await fsp.mkdir(imagesDir, { recursive: true });
  await fsp.symlink(outsideFile, path.join(imagesDir, 'link-out'));
  await fsp.symlink(outsideDir, path.join(imagesDir, 'dir-out'));

  const escapes = [
    `${root}/../outside/victim`,
    `${root}/images/../../outside/victim`,
    '../outside/victim',
    outsideFile,
    '/etc/passwd',
    path.join(imagesDir, 'link-out'),
    path.join(imagesDir, 'dir-out', 'victim'),
    path.join(imagesDir, 'dir-out', 'not-yet'),
    `${root}-sibling/file`,
    root,
  ];
  for (const p of escapes) {
    await rejectsStorage(driver.delete(p), 'invalid', /outside the backup storage directory/);
    await rejectsStorage(driver.open(p), 'invalid');
    await rejectsStorage(driver.readStream(p), 'invalid');
    await rejectsStorage(driver.allocatedSize(p), 'invalid');
    await rejectsStorage(driver.hash(p, ['MD5']), 'invalid');
  }
  assert.equal(await fsp.readFile(outsideFile, 'utf8'), 'do not touch');
  // createImport does not follow a symbolic link planted as an image directory.
  await fsp.symlink(outsideDir, path.join(imagesDir, 'planted'));
  await rejectsStorage(driver.createImport('planted'), 'invalid', /symbolic link/);
  assert.deepEqual((await fsp.readdir(outsideDir)).sort(), ['victim']);
});

test('open() reads bytes at offsets, short at the end, empty past it', async () => {
  const bytes = randomBytes(10_000);
  const p = await store('readable', bytes);
  const src = await driver.open(p);
  try {
    assert.equal(await src.size(), 10_000);
    assert.deepEqual(Buffer.from(await src.read(0, 16)), bytes.subarray(0, 16));
    assert.deepEqual(Buffer.from(await src.read(4321, 1000)), bytes.subarray(4321, 5321));
    const tail = await src.read(9_990, 100);
    assert.equal(tail.length, 10);
    assert.deepEqual(Buffer.from(tail), bytes.subarray(9_990));
    assert.equal((await src.read(10_000, 10)).length, 0);
    assert.equal((await src.read(50_000, 10)).length, 0);
    assert.equal((await src.read(5, 0)).length, 0);
    await rejectsStorage(src.read(-1, 5), 'invalid');
    await rejectsStorage(src.read(0, 1.5), 'invalid');
  } finally {
    await src.close();
  }
  await src.close();
  await rejectsStorage(src.read(0, 1), 'invalid', /closed/);
  await rejectsStorage(driver.open(driver.installPathOf('never-stored')), 'not-found');
});

test('readStream() serves whole files and inclusive ranges, and can be aborted', async () => {
  const bytes = randomBytes(3 * 2 ** 20);
  const p = await store('streamed', bytes);
  assert.ok((await readAll(await driver.readStream(p))).equals(bytes));
  assert.ok((await readAll(await driver.readStream(p, { start: 10, end: 19 }))).equals(bytes.subarray(10, 20)));
  assert.ok((await readAll(await driver.readStream(p, { start: 2 ** 20 }))).equals(bytes.subarray(2 ** 20)));
  assert.ok((await readAll(await driver.readStream(p, { end: 0 }))).equals(bytes.subarray(0, 1)));
  assert.equal((await readAll(await driver.readStream(p, { start: bytes.length + 5 }))).length, 0);
  await rejectsStorage(driver.readStream(p, { start: 20, end: 10 }), 'invalid');
  await rejectsStorage(driver.readStream(p, { start: -1 }), 'invalid');
  const ac = new AbortController();
  const s = await driver.readStream(p, { signal: ac.signal });
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const c of s) {
        got += (c as Buffer).length;
        ac.abort();
      }
    })(),
    { name: 'AbortError' },
  );
  assert.ok(got < bytes.length);
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(driver.readStream(p, { signal: pre.signal }), { name: 'AbortError' });
  await rejectsStorage(driver.readStream(driver.installPathOf('never-stored')), 'not-found');
});

test('delete removes the image and its directory; a missing image is fine', async () => {
  const p = await store('doomed', Buffer.from('bye'));
  await driver.delete(p);
  await assert.rejects(fsp.stat(path.dirname(p)), { code: 'ENOENT' });
  await driver.delete(p);
  await driver.delete(driver.installPathOf('never-stored'));
  await assert.doesNotReject(fsp.stat(path.join(root, 'images')));
  await rejectsStorage(driver.delete(path.join(root, 'images')), 'invalid', /directory/);
});

test('hash() equals openssl dgst and reports progress against the file length', async () => {
  const bytes = randomBytes(5 * 2 ** 20 + 3);
  const p = await store('hashed', bytes);
  const progress: Array<[number, number]> = [];
  const result = await driver.hash(p, ['MD5', 'SHA256'], { onProgress: (d, total) => progress.push([d, total]) });
  for (const alg of ['md5', 'sha256'] as const) {
    const { stdout } = await run('openssl', ['dgst', `-${alg}`, '-r', p]);
    assert.equal(result[alg === 'md5' ? 'MD5' : 'SHA256'], stdout.split(' ')[0]);
  }
  assert.ok(progress.length > 0);
  assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(driver.hash(p, ['MD5'], { signal: ac.signal }), { name: 'AbortError' });
  await rejectsStorage(driver.hash(driver.installPathOf('never-stored'), ['MD5']), 'not-found');
});

test('a write that fills the disk is no-space and removes the temporary file', async (t) => {
  const dir = path.join(tmp, 'tiny');
  const unmount = await mountTmpfs(dir, 'size=1m');
  if (!unmount) return t.skip('mounting a 1 MiB tmpfs is not permitted here; a real ENOSPC cannot be produced');
  try {
    const tiny = new LocalDirectoryDriver(dir);
    const cap = await tiny.connect();
    assert.ok(cap.totalCapacity <= 2 ** 20);
    const target = await tiny.createImport('too-large');
    const chunks = Array.from({ length: 32 }, () => randomBytes(64 * 1024)); // 2 MiB
    await assert.rejects(pipeline(Readable.from(chunks), target.stream), (e: unknown) => {
      assert.ok(e instanceof StorageError, String(e));
      assert.equal(e.kind, 'no-space');
      assert.match(e.message, /no space left.*free space/);
      return true;
    });
    assert.deepEqual(await fsp.readdir(path.join(dir, 'images')), [], 'no temporary file, no image directory');
    await rejectsStorage(target.commit(), 'no-space');
    await target.abort();
    // The space is back: a small image fits.
    const ok = await tiny.createImport('fits');
    await pipeline(Readable.from([randomBytes(1000)]), ok.stream);
    await ok.commit();
    assert.equal((await fsp.stat(ok.installPath)).size, 1000);
  } finally {
    await unmount();
  }
});

test('discard removes the committed image and leftovers of interrupted imports', async () => {
  const p = await store('discarded', Buffer.from('committed'));
  const dir = path.dirname(p);
  // A crash mid-import leaves a temporary file next to the image.
  const pending = await driver.createImport('discarded');
  pending.stream.write(Buffer.from('partial'));
  await new Promise((r) => setImmediate(r));
  assert.equal((await fsp.readdir(dir)).length, 2);
  await driver.discard('discarded');
  await assert.rejects(fsp.stat(dir), { code: 'ENOENT' });
  await pending.abort();
  await driver.discard('discarded'); // nothing left: fine
  await driver.discard('never-stored');
  await rejectsStorage(driver.discard('../images'), 'invalid');
  // A link planted as an image directory is removed, its target untouched.
  const outsideDir = path.join(tmp, 'outside-discard');
  await fsp.mkdir(outsideDir, { recursive: true });
  await fsp.writeFile(path.join(outsideDir, 'victim'), 'keep');
  await fsp.symlink(outsideDir, path.join(root, 'images', 'linked'));
  await driver.discard('linked');
  await assert.rejects(fsp.lstat(path.join(root, 'images', 'linked')), { code: 'ENOENT' });
  assert.equal(await fsp.readFile(path.join(outsideDir, 'victim'), 'utf8'), 'keep');
});
