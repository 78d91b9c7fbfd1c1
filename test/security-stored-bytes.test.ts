/**
 * Stored bytes changed behind zimage's back: an export link whose copy was rewritten into an unsafe image
 * (a qcow2 backed by /etc/passwd) or deleted is refused; ExportImageFromBackupStorage re-inspects the copy;
 * SyncImageSize reports an unsafe copy (now Error) and CalculateImageHash refuses it; restoring the bytes
 * and syncing again brings the copy back. Real `zimage serve` on loopback, real files, real qemu-img.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFileP, startProcess, tempDir, type ZClient } from './helpers/zimage.js';
import { md5 } from './helpers/assert.js';

describe('stored bytes changed behind zimage', () => {
  let server: Awaited<ReturnType<typeof startProcess>>;
  let c: ZClient;
  let work: string;
  let roots: string;
  let bs1: string;
  let bs2: string;
  let n = 0;

  before(async () => {
    work = await tempDir('zimage-stored-');
    roots = join(work, 'images');
    await mkdir(roots);
    await mkdir(join(work, 'bs1'));
    await mkdir(join(work, 'bs2'));
    const payload = join(work, 'payload.raw');
    await writeFile(payload, randomBytes(1024 * 1024));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, join(roots, 'disk.qcow2')]);
    server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: roots });
    c = server.client;
    await c.login();
    bs1 = (await c.addLocalStorage(join(work, 'bs1'), 'bs1')).uuid;
    bs2 = (await c.addLocalStorage(join(work, 'bs2'), 'bs2')).uuid;
  });

  after(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Adds the qcow2 to the storages; returns its uuid and the stored files (local install paths). */
  const addImage = async (storages = [bs1]) => {
    const res = await c.call('POST', '/images', {
      params: { name: `img-${++n}`, url: `file://${join(roots, 'disk.qcow2')}`, format: 'qcow2', backupStorageUuids: storages },
    });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    const paths = Object.fromEntries(
      (inv.backupStorageRefs as Array<{ backupStorageUuid: string; installPath: string }>).map((r) => [r.backupStorageUuid, r.installPath]),
    );
    return { uuid: inv.uuid as string, paths: paths as Record<string, string> };
  };
  const exportImage = (bs: string, imageUuid: string) =>
    c.call('PUT', `/backup-storage/${bs}/actions`, { exportImageFromBackupStorage: { imageUuid } });
  const syncSize = (uuid: string) => c.call('PUT', `/images/${uuid}/actions`, { syncImageSize: {} });
  const hash = (uuid: string, bs: string) =>
    c.call('PUT', `/images/${uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: 'MD5' } });
  const inventory = async (uuid: string) => (await c.raw('GET', `/images/${uuid}`)).body.inventories[0];
  const refStatus = async (uuid: string, bs: string) =>
    ((await inventory(uuid)).backupStorageRefs as Array<{ backupStorageUuid: string; status: string }>).find(
      (r) => r.backupStorageUuid === bs,
    )?.status;
  /** Rewrites a stored copy into a qcow2 whose backing file is /etc/passwd (unsafe), as someone with shell access could. */
  const makeUnsafe = async (file: string) => {
    await unlink(file);
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', file]);
  };

  test('an export link whose copy became unsafe is refused (409, ZStack error), the copy turns Error', async () => {
    const img = await addImage();
    const file = img.paths[bs1]!;
    const original = await readFile(file);
    // An old mtime: the link trusts size+mtime without reading the header, until they change.
    const past = new Date(Date.now() - 3600_000);
    await utimes(file, past, past);
    const ex = await exportImage(bs1, img.uuid);
    assert.equal(ex.status, 200, ex.text);
    const url = ex.body.imageUrl as string;
    for (let i = 0; i < 2; i++) {
      const ok = await fetch(url);
      assert.equal(ok.status, 200);
      assert.equal(md5(new Uint8Array(await ok.arrayBuffer())), md5(original));
    }

    await makeUnsafe(file);
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(url, { method });
      assert.equal(res.status, 409, `${method} of an unsafe copy`);
      assert.equal(res.headers.get('content-length') === String(original.length), false);
      if (method === 'GET') {
        const body = (await res.json()) as { error: { code: string; details: string } };
        assert.equal(body.error.code, 'SYS.1006');
        assert.match(body.error.details, /unsafe/);
        assert.match(body.error.details, /backing/i);
        assert.doesNotMatch(
          body.error.details,
          new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
          'no storage path in a data-plane answer',
        );
      }
    }
    assert.equal(await refStatus(img.uuid, bs1), 'Error');
    assert.equal((await inventory(img.uuid)).status, 'Error');

    // Not exported, not hashed while Error; SyncImageSize with no sound copy fails naming it.
    const again = await exportImage(bs1, img.uuid);
    assert.equal(again.status, 503, again.text);
    assert.match(again.body.error.details, /Error, not Ready/);
    const h = await hash(img.uuid, bs1);
    assert.equal(h.status, 503, h.text);
    assert.match(h.body.error.details, /Error, not Ready/);
    const sync = await syncSize(img.uuid);
    assert.equal(sync.status, 503, sync.text);
    assert.match(sync.body.error.details, /no sound copy.*unsafe.*Restore the bytes and run SyncImageSize again/s);

    // Recovery: the bytes restored, SyncImageSize finds the copy sound: Ready again, the link serves.
    await writeFile(file, original);
    const synced = await syncSize(img.uuid);
    assert.equal(synced.status, 200, synced.text);
    assert.equal(synced.body.unsafeCopies, undefined);
    assert.equal(synced.body.inventory.status, 'Ready');
    assert.equal(await refStatus(img.uuid, bs1), 'Ready');
    const back = await fetch(url);
    assert.equal(back.status, 200);
    assert.equal(md5(new Uint8Array(await back.arrayBuffer())), md5(original));
  });

  test('an export link whose copy was deleted is refused with 404 and a ZStack error', async () => {
    const img = await addImage();
    const ex = await exportImage(bs1, img.uuid);
    assert.equal(ex.status, 200, ex.text);
    assert.equal((await fetch(ex.body.imageUrl)).status, 200);
    await unlink(img.paths[bs1]!);
    const res = await fetch(ex.body.imageUrl);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; details: string } };
    assert.equal(body.error.code, 'SYS.1006');
    assert.match(body.error.details, /missing/);
    // SyncImageSize marks the missing copy Error.
    const sync = await syncSize(img.uuid);
    assert.equal(sync.status, 503, sync.text);
    assert.equal(await refStatus(img.uuid, bs1), 'Error');
  });

  test('an export link whose copy was replaced by a symbolic link out of the storage is refused (409)', async () => {
    const img = await addImage();
    const ex = await exportImage(bs1, img.uuid);
    assert.equal(ex.status, 200, ex.text);
    await unlink(img.paths[bs1]!);
    await symlink('/etc/passwd', img.paths[bs1]!);
    const res = await fetch(ex.body.imageUrl);
    assert.equal(res.status, 409);
    const body = (await res.json()) as { error: { code: string; details: string } };
    assert.equal(body.error.code, 'SYS.1006');
    assert.doesNotMatch(body.error.details, /root:/, 'none of the link target in the answer');
    assert.equal(await refStatus(img.uuid, bs1), 'Error');
  });

  test('ExportImageFromBackupStorage re-inspects the copy and refuses an unsafe one', async () => {
    const img = await addImage();
    await makeUnsafe(img.paths[bs1]!);
    const ex = await exportImage(bs1, img.uuid);
    assert.equal(ex.status, 503, ex.text);
    assert.equal(ex.body.error.code, 'SYS.1006');
    assert.match(ex.body.error.details, /unsafe.*backing/is);
    assert.equal(await refStatus(img.uuid, bs1), 'Error');
    assert.equal((await inventory(img.uuid)).backupStorageRefs[0].exportUrl ?? null, null);
  });

  test('SyncImageSize reports an unsafe copy among sound ones; CalculateImageHash refuses it', async () => {
    const img = await addImage([bs1, bs2]);
    // CalculateImageHash judges the header before hashing, even before any SyncImageSize.
    await makeUnsafe(img.paths[bs2]!);
    const h = await hash(img.uuid, bs2);
    assert.equal(h.status, 503, h.text);
    assert.match(h.body.error.details, /unsafe.*not hashed/s);
    assert.equal(await refStatus(img.uuid, bs2), 'Error');

    const sync = await syncSize(img.uuid);
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.body.inventory.status, 'Ready', 'one sound copy keeps the image Ready');
    assert.equal(sync.body.unsafeCopies.length, 1);
    assert.equal(sync.body.unsafeCopies[0].backupStorageUuid, bs2);
    assert.match(sync.body.unsafeCopies[0].reason, /unsafe/);
    assert.equal(await refStatus(img.uuid, bs2), 'Error');
    assert.equal(await refStatus(img.uuid, bs1), 'Ready');
    const good = await hash(img.uuid, bs1);
    assert.equal(good.status, 200, good.text);
    const bad = await hash(img.uuid, bs2);
    assert.equal(bad.status, 503, bad.text);

    // Recovery by copying the sound copy's bytes back, then SyncImageSize.
    await copyFile(img.paths[bs1]!, img.paths[bs2]!);
    const fixed = await syncSize(img.uuid);
    assert.equal(fixed.status, 200, fixed.text);
    assert.equal(fixed.body.unsafeCopies, undefined);
    assert.equal(await refStatus(img.uuid, bs2), 'Ready');
  });
});
