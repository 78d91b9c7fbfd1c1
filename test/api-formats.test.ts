/**
 * AddImage and SyncImageSize use the format inspector: every format qemu-img writes is detected from the
 * bytes and measured exactly as qemu-img reports it; unsafe images are refused and leave nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFileP, qemuInfo, startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

describe('AddImage and SyncImageSize across formats', () => {
  let server: TestServer;
  let work: string;
  let fixtures: string;
  let storage: string;
  let bs: string;

  before(async () => {
    work = await tempDir();
    fixtures = join(work, 'fixtures');
    storage = join(work, 'storage');
    await mkdir(fixtures);
    await mkdir(storage);
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    await server.client.login();
    bs = (await server.client.addLocalStorage(storage)).uuid;
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const cases: Array<{ name: string; format: string; qemu: string; create: string[] }> = [
    { name: 'qcow2 v2', format: 'qcow2', qemu: 'qcow2', create: ['-o', 'compat=0.10', '1G'] },
    { name: 'qcow2 preallocated', format: 'qcow2', qemu: 'qcow2', create: ['-o', 'preallocation=full', '8M'] },
    { name: 'qcow2 1 byte over a cluster', format: 'qcow2', qemu: 'qcow2', create: ['65537'] },
    { name: 'qcow2 2 TiB virtual', format: 'qcow2', qemu: 'qcow2', create: ['2T'] },
    { name: 'vmdk monolithicSparse', format: 'vmdk', qemu: 'vmdk', create: ['10G'] },
    { name: 'vmdk streamOptimized', format: 'vmdk', qemu: 'vmdk', create: ['-o', 'subformat=streamOptimized', '1G'] },
    { name: 'vhd dynamic', format: 'vhd', qemu: 'vpc', create: ['10G'] },
    { name: 'vhd fixed', format: 'vhd', qemu: 'vpc', create: ['-o', 'subformat=fixed,force_size=on', '4M'] },
    { name: 'vhdx', format: 'vhdx', qemu: 'vhdx', create: ['10G'] },
    { name: 'vdi', format: 'vdi', qemu: 'vdi', create: ['10G'] },
  ];

  for (const c of cases) {
    test(`${c.name}: detected, sized like qemu-img, synced`, async () => {
      const file = join(fixtures, `${c.name.replace(/\W+/g, '-')}.img`);
      await execFileP('qemu-img', ['create', '-q', '-f', c.qemu, file, ...c.create.slice(0, -1), c.create.at(-1)!]);
      const res = await server.client.call('POST', '/images', {
        params: { name: c.name, url: `file://${file}`, format: c.format, backupStorageUuids: [bs] },
      });
      assert.equal(res.status, 200, res.text);
      const inv = res.body.inventory;
      const stored = inv.backupStorageRefs[0].installPath;
      const ref = await qemuInfo(stored, c.qemu);
      assert.equal(inv.format, c.format);
      assert.equal(inv.size, ref['virtual-size']);
      assert.equal(inv.actualSize, ref['actual-size']);
      const synced = await server.client.call('PUT', `/images/${inv.uuid}/actions`, { syncImageSize: {} });
      assert.equal(synced.body.inventory.size, ref['virtual-size']);
    });
  }

  test('an ISO added with mediaType ISO is format iso, sized like the volume', async () => {
    const src = join(work, 'iso-src');
    await mkdir(src);
    await writeFile(join(src, 'hello.txt'), 'hello\n'.repeat(1000));
    const iso = join(fixtures, 'a.iso');
    await execFileP('genisoimage', ['-quiet', '-o', iso, src]);
    const res = await server.client.call('POST', '/images', {
      params: { name: 'iso', url: `file://${iso}`, mediaType: 'ISO', backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.format, 'iso');
    assert.equal(res.body.inventory.mediaType, 'ISO');
    assert.equal(res.body.inventory.size, (await qemuInfo(iso, 'raw'))['virtual-size']);
  });

  test('a format not declared is taken from the bytes', async () => {
    const file = join(fixtures, 'undeclared.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', file, '5G']);
    const res = await server.client.call('POST', '/images', {
      params: { name: 'undeclared', url: `file://${file}`, backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.format, 'qcow2');
    assert.equal(res.body.inventory.size, 5 * 1024 ** 3);
  });

  test('unsafe images are refused with the check named, and leave nothing', async () => {
    const before = (await readdir(join(storage, 'images'))).length;
    const flat = join(fixtures, 'flat.vmdk');
    await execFileP('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', flat, '1M']);
    const qed = join(fixtures, 'a.qed');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qed', qed, '1G']);
    const el2 = join(fixtures, 'el2.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', el2, '1G']);
    for (const [file, format, why] of [
      [flat, 'vmdk', /createType|descriptor|monolithicflat/i],
      [qed, 'qcow2', /qed/i],
      [el2, 'qcow2', /feature/i],
    ] as const) {
      const res = await server.client.call('POST', '/images', {
        params: { name: 'bad', url: `file://${file}`, format, backupStorageUuids: [bs] },
      });
      assert.equal(res.status, 503, res.text);
      assert.match(res.body.error.details, why);
    }
    assert.equal((await readdir(join(storage, 'images'))).length, before);
    assert.equal((await server.client.call('GET', '/images?q=name=bad&count=true')).body.total, 0);
  });

  test('an image that turned unsafe after it was added fails SyncImageSize and keeps its recorded size', async () => {
    const file = join(fixtures, 'later.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', file, '1G']);
    const added = (
      await server.client.call('POST', '/images', { params: { name: 'later', url: `file://${file}`, backupStorageUuids: [bs] } })
    ).body.inventory;
    const stored = added.backupStorageRefs[0].installPath;
    await execFileP('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', stored]);
    const res = await server.client.call('PUT', `/images/${added.uuid}/actions`, { syncImageSize: {} });
    assert.equal(res.status, 503);
    assert.match(res.body.error.details, /unsafe.*backing/i);
    const now = (await server.client.call('GET', `/images/${added.uuid}`)).body.inventories[0];
    assert.equal(now.size, added.size);
  });
});
