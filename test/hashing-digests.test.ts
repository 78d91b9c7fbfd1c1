/** Digest correctness of src/hashing against `openssl dgst`: files, ranges, streams, the tee, MultiDigest. */
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import {
  createHashingTee,
  DIGEST_ALGORITHMS,
  hashFile,
  hashPoolStats,
  hashStream,
  MultiDigest,
  type DigestAlgorithm,
} from '../src/hashing/index.js';
import {
  chunked,
  collectUnhandledRejections,
  makeTempDir,
  MiB,
  opensslDigestOfBytes,
  opensslDigests,
  writeRandomFile,
} from './helpers/hashing-fixtures.js';

const ALL = [...DIGEST_ALGORITHMS] as DigestAlgorithm[];
const unhandled = collectUnhandledRejections();
let tmp: { dir: string; cleanup: () => Promise<void> };
const files = new Map<number, { path: string; bytes: Buffer; expected: Record<string, string> }>();
// 0 and 1 byte, odd sizes around the 4 MiB read/slot size, and several slots' worth
const SIZES = [0, 1, 4095, 1_000_003, 4 * MiB - 1, 4 * MiB + 1, 13 * MiB + 4097];

before(async () => {
  tmp = await makeTempDir('hashing-digests');
  for (const size of SIZES) {
    const { path, bytes } = await writeRandomFile(tmp.dir, `r${size}.bin`, size);
    files.set(size, { path, bytes, expected: await opensslDigests(ALL, path) });
  }
});

after(async () => {
  await tmp?.cleanup();
});

const file = (size: number) => files.get(size)!;

test('the openssl reference itself is sane (known empty-input digests)', () => {
  const e = file(0).expected;
  assert.equal(e.MD5, 'd41d8cd98f00b204e9800998ecf8427e');
  assert.equal(e.SHA256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(e.SM3, '1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b');
});

test('hashFile, one algorithm at a time (calling thread), equals openssl for every algorithm and size', async () => {
  for (const size of SIZES) {
    for (const alg of ALL) {
      const got = await hashFile(file(size).path, { algorithms: [alg] });
      assert.deepEqual(got, { [alg]: file(size).expected[alg] }, `${alg} of ${size} bytes`);
    }
  }
});

test('hashFile, all algorithms in one pass (worker threads), equals openssl for every size', async () => {
  for (const size of SIZES) {
    const got = await hashFile(file(size).path, { algorithms: ALL });
    assert.deepEqual(got, file(size).expected, `${size} bytes`);
  }
});

test('hashFile deduplicates algorithms and rejects bad input', async () => {
  const f = file(4 * MiB + 1);
  const got = await hashFile(f.path, { algorithms: ['SHA256', 'MD5', 'SHA256', 'MD5'] });
  assert.deepEqual(got, { SHA256: f.expected.SHA256, MD5: f.expected.MD5 });
  await assert.rejects(hashFile(f.path, { algorithms: [] }), TypeError);
  await assert.rejects(hashFile(f.path, { algorithms: ['CRC32' as DigestAlgorithm] }), TypeError);
  await assert.rejects(hashFile(f.path, { algorithms: ['MD5'], start: 10, end: 5 }), RangeError);
  await assert.rejects(hashFile(f.path, { algorithms: ['MD5'], start: -1 }), RangeError);
  await assert.rejects(hashFile(join(tmp.dir, 'missing'), { algorithms: ['MD5', 'SHA256'] }), { code: 'ENOENT' });
});

test('hashFile ranges [start, end) equal openssl over the sliced bytes', async () => {
  const f = file(13 * MiB + 4097);
  const ranges: [number, number | undefined][] = [
    [0, 0],
    [5, 6],
    [1, 4 * MiB + 3],
    [4 * MiB - 7, 9 * MiB + 11],
    [12 * MiB, undefined],
    [3, f.bytes.length + 1000], // past the end: stops at the end of the file
  ];
  for (const [start, end] of ranges) {
    const slice = f.bytes.subarray(start, end === undefined ? undefined : Math.min(end, f.bytes.length));
    const expected = {
      MD5: await opensslDigestOfBytes('MD5', slice),
      SHA256: await opensslDigestOfBytes('SHA256', slice),
    };
    for (const algorithms of [['MD5'], ['SHA256'], ['MD5', 'SHA256']] as DigestAlgorithm[][]) {
      const got = await hashFile(f.path, { algorithms, start, ...(end === undefined ? {} : { end }) });
      for (const a of algorithms) assert.equal(got[a], expected[a as 'MD5' | 'SHA256'], `${a} [${start}, ${end})`);
    }
  }
});

test('hashStream over file streams and odd-sized chunks equals openssl', async () => {
  for (const size of [0, 1, 1_000_003, 13 * MiB + 4097]) {
    const f = file(size);
    for (const algorithms of [['SHA512'], ['MD5', 'SHA1', 'SHA256']] as DigestAlgorithm[][]) {
      const fromFs = await hashStream(createReadStream(f.path), { algorithms });
      const fromChunks = await hashStream(chunked(f.bytes, 777_777), { algorithms });
      for (const a of algorithms) {
        assert.equal(fromFs[a], f.expected[a], `${a} of ${size} bytes, fs stream`);
        assert.equal(fromChunks[a], f.expected[a], `${a} of ${size} bytes, odd chunks`);
      }
    }
  }
});

test('createHashingTee copies the bytes unchanged and digests them', async () => {
  for (const size of [0, 1_000_003, 13 * MiB + 4097]) {
    const f = file(size);
    for (const algorithms of [['SHA256'], ['MD5', 'SHA256', 'SM3']] as DigestAlgorithm[][]) {
      const out = join(tmp.dir, `copy-${size}-${algorithms.length}.bin`);
      const tee = createHashingTee({ algorithms });
      await pipeline(createReadStream(f.path, { highWaterMark: 256 * 1024 }), tee, createWriteStream(out));
      const copied = await readFile(out);
      assert.equal(copied.length, f.bytes.length);
      assert.ok(copied.equals(f.bytes), 'copied bytes identical');
      assert.equal(tee.bytesHashed, size);
      const d = await tee.digests();
      for (const a of algorithms) assert.equal(d[a], f.expected[a], `${a} of ${size} bytes through the tee`);
    }
  }
});

test('createHashingTee respects back-pressure from a slow writer', async () => {
  const f = file(4 * MiB + 1);
  const tee = createHashingTee({ algorithms: ['MD5', 'SHA256'] });
  const slow = new PassThrough({ highWaterMark: 64 * 1024 });
  let maxBuffered = 0;
  const received: Buffer[] = [];
  const consume = (async () => {
    for await (const c of slow) {
      received.push(c as Buffer);
      maxBuffered = Math.max(maxBuffered, tee.readableLength + tee.writableLength);
      await new Promise((r) => setImmediate(r));
    }
  })();
  await pipeline(Readable.from(chunked(f.bytes, 64 * 1024)), tee, slow);
  await consume;
  assert.ok(Buffer.concat(received).equals(f.bytes));
  assert.ok(maxBuffered <= 1 * MiB, `tee buffered at most ${maxBuffered} bytes`);
  assert.deepEqual(await tee.digests(), { MD5: f.expected.MD5, SHA256: f.expected.SHA256 });
});

test('a tee destroyed before the end rejects digests() and frees its workers', async () => {
  const tee = createHashingTee({ algorithms: ['MD5', 'SHA256'] });
  const errors: Error[] = [];
  tee.on('error', (e) => errors.push(e));
  tee.write(Buffer.alloc(1000));
  tee.destroy(new Error('writer failed'));
  await assert.rejects(tee.digests(), /writer failed/);
  await new Promise((r) => setImmediate(r));
  assert.equal(errors[0]?.message, 'writer failed');
  for (let i = 0; i < 100 && hashPoolStats().idle < hashPoolStats().workers; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(hashPoolStats().workers >= 2);
  assert.equal(hashPoolStats().idle, hashPoolStats().workers, 'every worker back in the pool');
});

test('MultiDigest with several algorithms, chunk reuse after update() resolves', async () => {
  const f = file(13 * MiB + 4097);
  const md = new MultiDigest(['MD5', 'SHA1', 'SHA256', 'SHA512', 'SM3', 'MD5']);
  const scratch = Buffer.alloc(1_234_567); // reused for every chunk: update() must have taken its copy
  for (let off = 0; off < f.bytes.length; off += scratch.length) {
    const n = f.bytes.copy(scratch, 0, off, Math.min(off + scratch.length, f.bytes.length));
    await md.update(scratch.subarray(0, n));
    scratch.fill(0xa5);
  }
  assert.equal(md.bytesHashed, f.bytes.length);
  assert.deepEqual(await md.digest(), f.expected);
  assert.deepEqual(await md.digest(), f.expected, 'digest() twice answers the same');
  md.destroy();
  md.destroy();
  await assert.rejects(md.update(Buffer.alloc(1)), /destroyed/);
});

test('MultiDigest: single algorithm, empty input, un-awaited updates keep their order', async () => {
  const f = file(1_000_003);
  const one = new MultiDigest(['SHA256']);
  await one.update(f.bytes.subarray(0, 10));
  await one.update(f.bytes.subarray(10));
  assert.deepEqual(await one.digest(), { SHA256: f.expected.SHA256 });
  one.destroy();

  const empty = new MultiDigest(['MD5', 'SHA256']);
  assert.deepEqual(await empty.digest(), { MD5: file(0).expected.MD5, SHA256: file(0).expected.SHA256 });
  empty.destroy();

  const md = new MultiDigest(['MD5', 'SHA512']);
  const parts = [...Array(7).keys()].map((i) => f.bytes.subarray(i * 150_000, (i + 1) * 150_000));
  await Promise.all(parts.map((p) => md.update(p))); // not awaited one by one
  assert.deepEqual(await md.digest(), { MD5: f.expected.MD5, SHA512: f.expected.SHA512 });
  await assert.rejects(md.update(Buffer.alloc(1)), /after digest/);
  md.destroy();
});

test('no unhandled rejections', async () => {
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(unhandled(), []);
});
