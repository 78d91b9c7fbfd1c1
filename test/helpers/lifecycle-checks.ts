/**
 * The image APIs beyond add/sync/hash, run the same way on any backup storage type: upload (resumable),
 * export with Range, delete / recover / expunge. `present(installPath)` tells whether the bytes still exist
 * on that storage (a file on the host, an RBD image, …).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ZClient } from './zimage.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

export async function checkLifecycleOn(
  c: ZClient,
  storageUuid: string,
  source: Buffer,
  present: (installPath: string) => Promise<boolean>,
): Promise<void> {
  // Upload in two resumed parts.
  const added = await c.call('POST', '/images', {
    params: { name: 'uploaded', url: 'upload://disk.raw', format: 'raw', backupStorageUuids: [storageUuid] },
  });
  assert.equal(added.status, 200, added.text);
  const uploadUrl = added.body.inventory.url as string;
  const half = Math.floor(source.length / 2);
  const first = await fetch(uploadUrl, {
    method: 'PUT',
    body: new Uint8Array(source.subarray(0, half)),
    headers: { 'X-Offset': '0', 'Content-Type': 'application/octet-stream' },
  });
  assert.ok(first.ok, await first.text());
  const last = await fetch(uploadUrl, {
    method: 'PUT',
    body: new Uint8Array(source.subarray(half)),
    headers: { 'X-Offset': String(half), 'X-Upload-Complete': 'true', 'Content-Type': 'application/octet-stream' },
  });
  assert.ok(last.ok, await last.text());
  const image = (await c.call('GET', `/images/${added.body.inventory.uuid}`)).body.inventories[0];
  assert.equal(image.status, 'Ready');
  assert.equal(image.md5Sum, md5(source));
  const installPath = image.backupStorageRefs[0].installPath as string;
  assert.ok(await present(installPath));

  // Export, whole and by Range.
  const exp = await c.call('PUT', `/backup-storage/${storageUuid}/actions`, { exportImageFromBackupStorage: { imageUuid: image.uuid } });
  assert.equal(exp.status, 200, exp.text);
  assert.equal(exp.body.exportMd5Sum, md5(source));
  const whole = Buffer.from(await (await fetch(exp.body.imageUrl)).arrayBuffer());
  assert.equal(md5(whole), md5(source));
  const part = await fetch(exp.body.imageUrl, { headers: { Range: 'bytes=100-199' } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), source.subarray(100, 200));
  assert.equal((await c.call('DELETE', `/backup-storage/${storageUuid}/exported-images/${image.uuid}`)).status, 200);
  assert.equal((await fetch(exp.body.imageUrl)).status, 404);

  // Delete (Delay: bytes kept), recover, delete again, expunge (bytes gone).
  assert.equal((await c.call('DELETE', `/images/${image.uuid}`)).status, 200);
  assert.equal((await c.call('GET', `/images/${image.uuid}`)).body.inventories[0].status, 'Deleted');
  assert.ok(await present(installPath), 'Delay keeps the bytes');
  assert.equal((await c.call('PUT', `/images/${image.uuid}/actions`, { recoverImage: {} })).body.inventory.status, 'Ready');
  assert.equal((await c.call('DELETE', `/images/${image.uuid}`)).status, 200);
  assert.equal((await c.call('PUT', `/images/${image.uuid}/actions`, { expungeImage: {} })).status, 200);
  assert.deepEqual((await c.call('GET', `/images/${image.uuid}`)).body.inventories, []);
  assert.equal(await present(installPath), false, 'expunge removed the bytes from the storage');
}
