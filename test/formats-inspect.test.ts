/**
 * The public API of src/formats: options, budget, error typing, read accounting, and the qemu-img-info
 * shaped view.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferByteSource } from '../src/formats/byte-source.js';
import { DEFAULT_BUDGET_BYTES, DEFAULT_MAX_VIRTUAL_SIZE, inspect, InspectError, qemuFormatName } from '../src/formats/inspect.js';
import { toQemuImgInfo } from '../src/formats/qemu-info.js';
import {
  CountingSource,
  failureIds,
  gptDisk,
  inspectBytes,
  isoImage,
  mbrDisk,
  qcow2Header,
  vhdDynamic,
  vhdxImage,
  vmdkSparse,
} from './helpers/formats-fixtures.js';

test('defaults: 4 MiB budget, 64 TiB maximum virtual size', () => {
  assert.equal(DEFAULT_BUDGET_BYTES, 4 * 1024 * 1024);
  assert.equal(DEFAULT_MAX_VIRTUAL_SIZE, 64 * 1024 ** 4);
});

test('budget exceeded rejects with a typed InspectError and reads nothing beyond it', async () => {
  const src = new CountingSource(new BufferByteSource(vhdxImage()));
  await assert.rejects(inspect(src, { budgetBytes: 20_000 }), (e: unknown) => e instanceof InspectError && e.code === 'BUDGET_EXCEEDED');
  assert.ok(src.total <= 20_000);
  // The same image inspects fine under the default budget.
  const r = await inspect(new BufferByteSource(vhdxImage()));
  assert.equal(r.format, 'vhdx');
});

test('bad options are rejected', async () => {
  const src = new BufferByteSource(qcow2Header());
  for (const opts of [{ budgetBytes: -1 }, { budgetBytes: 1.5 }, { maxVirtualSize: Number.NaN }, { maxVirtualSize: 2 ** 60 }]) {
    await assert.rejects(inspect(src, opts), (e: unknown) => e instanceof InspectError && e.code === 'BAD_OPTIONS');
  }
});

test('a read failure is wrapped, with the cause kept', async () => {
  const cause = new Error('EIO');
  await assert.rejects(
    inspect({
      size: () => Promise.resolve(4096),
      read: () => Promise.reject(cause),
    }),
    (e: unknown) => e instanceof InspectError && e.code === 'READ_FAILED' && e.cause === cause,
  );
});

test('maxVirtualSize: larger images are refused, smaller pass', async () => {
  const img = qcow2Header({ size: 2n * 1024n ** 4n });
  const r = await inspectBytes(img, { maxVirtualSize: 1024 ** 4 });
  assert.deepEqual(failureIds(r), ['virtual-size-limit']);
  assert.equal(r.virtualSize, 2 * 1024 ** 4);
  assert.equal((await inspectBytes(img)).safety.ok, true);
});

test('bytesRead counts what the source delivered; repeated regions are not re-read', async () => {
  const src = new CountingSource(new BufferByteSource(vmdkSparse()));
  const r = await inspect(src);
  assert.equal(r.bytesRead, src.total);
  assert.ok(r.bytesRead < 16 * 1024, `read ${r.bytesRead}`);
  const small = new CountingSource(new BufferByteSource(qcow2Header()));
  const r2 = await inspect(small);
  assert.equal(r2.bytesRead, 1024); // the whole (1 KiB) file once, never twice
});

test('raw fallback; empty source', async () => {
  const r = await inspectBytes(Buffer.alloc(1000, 0x11));
  assert.equal(r.format, 'raw');
  assert.equal(r.virtualSize, 1024);
  assert.deepEqual(r.details, { matched: [] });
  const e = await inspectBytes(new Uint8Array(0));
  assert.equal(e.format, 'raw');
  assert.equal(e.virtualSize, 0);
  assert.equal(e.bytesRead, 0);
});

test('qemu format names', () => {
  assert.equal(qemuFormatName('vhd'), 'vpc');
  for (const f of ['iso', 'gpt', 'mbr', 'raw'] as const) assert.equal(qemuFormatName(f), 'raw');
  for (const f of ['qcow2', 'vmdk', 'vhdx', 'vdi', 'qed', 'luks'] as const) assert.equal(qemuFormatName(f), f);
});

test('toQemuImgInfo: qcow2 with backing file', async () => {
  const r = await inspectBytes(qcow2Header({ backingFile: 'base.qcow2' }));
  const q = toQemuImgInfo(r, 'x.qcow2', 4096);
  assert.equal(q.filename, 'x.qcow2');
  assert.equal(q.format, 'qcow2');
  assert.equal(q['virtual-size'], 1024 * 1024);
  assert.equal(q['actual-size'], 4096);
  assert.equal(q['cluster-size'], 65536);
  assert.equal(q['backing-filename'], 'base.qcow2');
  assert.equal(q.encrypted, undefined);
  assert.deepEqual(q['format-specific'], {
    type: 'qcow2',
    data: { compat: '1.1', 'compression-type': 'zlib', 'refcount-bits': 16, 'lazy-refcounts': false, corrupt: false, 'extended-l2': false },
  });
  assert.equal(q.zimage.format, 'qcow2');
  assert.deepEqual(
    q.zimage.safety.failures.map((f) => f.check),
    ['qcow2-backing-file'],
  );
  assert.doesNotThrow(() => JSON.stringify(q));
});

test('toQemuImgInfo: vhd → vpc, iso/gpt/mbr → raw, no actual-size unless given', async () => {
  const vhd = toQemuImgInfo(await inspectBytes(vhdDynamic()), 'a.vhd');
  assert.equal(vhd.format, 'vpc');
  assert.equal(vhd['cluster-size'], 2 * 1024 * 1024);
  assert.equal('actual-size' in vhd, false);
  const iso = toQemuImgInfo(await inspectBytes(isoImage()), 'a.iso');
  assert.equal(iso.format, 'raw');
  assert.equal(iso.zimage.format, 'iso');
  const gpt = toQemuImgInfo(await inspectBytes(gptDisk()), 'g.img');
  assert.equal(gpt.format, 'raw');
  assert.equal(gpt.zimage.details.partitionTable, 'gpt');
  const mbr = toQemuImgInfo(await inspectBytes(mbrDisk([{ type: 0x83, sectors: 9 }])), 'm.img');
  assert.equal(mbr.format, 'raw');
  assert.equal(mbr.zimage.details.partitionTable, 'mbr');
  assert.equal(mbr['format-specific'], undefined);
});
