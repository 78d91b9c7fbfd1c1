/** Memory of many concurrent hashes: each job's buffers shrink once many run, and the digests stay right. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashFile, MultiDigest, shutdownHashPool } from '../src/hashing/index.js';
import { reserveChunks, tuning } from '../src/hashing/sinks.js';
import { makeTempDir, MiB, opensslDigests, writeRandomFile } from './helpers/hashing-fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let expected: Record<string, string>;

before(async () => {
  tmp = await makeTempDir('hashing-memory');
  file = await writeRandomFile(tmp.dir, 'data.bin', 9 * MiB + 123);
  expected = await opensslDigests(['MD5', 'SHA256'], file.path);
});

after(async () => {
  await shutdownHashPool();
  await tmp.cleanup();
});

test('chunk sizes: full size while few jobs hold buffers, smaller (never below 256 KiB) when many do, back after release', () => {
  const held = Array.from({ length: 40 }, () => reserveChunks(2));
  assert.equal(held[0]!.size, tuning.chunkSize, 'the first jobs get full chunks');
  const sizes = held.map((h) => h.size);
  for (let i = 1; i < sizes.length; i++) assert.ok(sizes[i]! <= sizes[i - 1]!, `sizes never grow as jobs pile up: ${sizes.join(',')}`);
  assert.ok(sizes.at(-1)! < tuning.chunkSize, 'later jobs get smaller chunks');
  assert.ok(
    sizes.every((s) => s >= 256 * 1024 && s % 65536 === 0),
    `sizes: ${sizes.join(',')}`,
  );
  for (const h of held) {
    h.release();
    h.release(); // idempotent
  }
  const again = reserveChunks(2);
  assert.equal(again.size, tuning.chunkSize, 'every release was counted once');
  again.release();
});

test('24 concurrent reads with small chunks give the right digests and release their share', async () => {
  const results = await Promise.all(
    Array.from({ length: 24 }, (_, i) => hashFile(file.path, { algorithms: i % 2 ? ['SHA256'] : ['MD5', 'SHA256'] })),
  );
  results.forEach((r, i) => {
    assert.equal(r.SHA256, expected.SHA256);
    if (i % 2 === 0) assert.equal(r.MD5, expected.MD5);
  });
  const md = new MultiDigest(['MD5', 'SHA256']);
  await md.update(file.bytes);
  assert.deepEqual(await md.digest(), { MD5: expected.MD5, SHA256: expected.SHA256 });
  const probe = reserveChunks(2);
  assert.equal(probe.size, tuning.chunkSize, 'no job still counts as holding buffers');
  probe.release();
});
