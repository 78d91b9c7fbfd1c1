/**
 * The BackupStorageDriver contract (src/storage/driver.ts), written once and run against every driver, the
 * way Kysely runs one suite against every dialect:
 *
 *   describeDriverContract('local', async () => ({ driver, installPathOf, storedNames, outsidePaths, close }));
 *
 * Each promise of the interface is checked here once: connect reports capacity; an import is invisible
 * until commit and leaves no byte behind after abort or a failed source; commit/abort are idempotent and
 * ordered; sizes, byte ranges and range errors of open() and readStream(); stat; allocatedSize; hash (and
 * its progress and cancel); resumeImport where the driver has it; delete and discard; missing images are 'not-found'; bad uuids and paths outside
 * the storage are 'invalid'. What is particular to one storage (SSH faults, Ceph quotas, symbolic links)
 * stays in that driver's own test file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { type BackupStorageDriver, isResumable } from '../../src/storage/driver.js';
import { rejectsStorage } from './storage-assert.js';

/** One driver under test, on a storage of its own. */
export interface ContractSubject {
  driver: BackupStorageDriver;
  /** The install path the driver gives a committed image (to check createImport's answer). */
  installPathOf(imageUuid: string): string;
  /** Names of everything stored for an image, committed or partial, read from the storage itself (not the driver). */
  storedNames(imageUuid: string): Promise<string[]>;
  /** Install paths that are not inside this storage: each must be refused as 'invalid'. */
  outsidePaths: string[];
  /** Releases the driver and anything the subject made. */
  close(): Promise<void>;
}

const MiB = 1 << 20;
/** Larger than every driver's read chunk (1 or 4 MiB) and not a multiple of it. */
const IMAGE_SIZE = 5 * MiB + 12_345;

const newUuid = (): string => randomUUID().replaceAll('-', '');

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

/** Writes `data` without ending the stream (the next step suspends the import). */
async function writeAll(w: Writable, data: Buffer): Promise<void> {
  if (!w.write(data)) await once(w, 'drain');
}

/** Declares the contract's tests for the driver `setup` makes (once for the whole suite). */
export function describeDriverContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`BackupStorageDriver contract: ${name}`, () => {
    let s: ContractSubject;
    let driver: BackupStorageDriver;
    const bytes = randomBytes(IMAGE_SIZE);
    let stored: string;

    /** Imports `data` in a few pieces and commits; returns the install path. */
    const store = async (uuid: string, data: Buffer): Promise<string> => {
      const target = await driver.createImport(uuid, { expectedSize: data.length });
      await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000, 2 * MiB), data.subarray(2 * MiB)]), target.stream);
      await target.commit();
      return target.installPath;
    };

    before(async () => {
      s = await setup();
      driver = s.driver;
      await driver.connect();
      stored = await store(newUuid(), bytes);
    });

    after(async () => {
      await s?.close();
    });

    test('connect reports capacity: whole non-negative numbers, available within total', async () => {
      const cap = await driver.connect();
      for (const v of [cap.totalCapacity, cap.availableCapacity]) assert.ok(Number.isSafeInteger(v) && v >= 0, String(v));
      assert.ok(cap.totalCapacity > 0);
      assert.ok(cap.availableCapacity <= cap.totalCapacity, `${cap.availableCapacity} > ${cap.totalCapacity}`);
    });

    test('import: nothing under installPath before commit; after commit exactly the bytes written', async () => {
      const uuid = newUuid();
      const target = await driver.createImport(uuid);
      assert.equal(target.installPath, s.installPathOf(uuid));
      target.stream.write(bytes.subarray(0, 3 * MiB));
      await rejectsStorage(driver.open(target.installPath), 'not-found');
      await rejectsStorage(driver.readStream(target.installPath), 'not-found');
      await pipeline(Readable.from([bytes.subarray(3 * MiB)]), target.stream);
      await rejectsStorage(driver.open(target.installPath), 'not-found');
      await target.commit();
      assert.ok((await readAll(await driver.readStream(target.installPath))).equals(bytes));
      await driver.delete(target.installPath);
    });

    test('createImport refuses an expected size beyond the free space (no-space), storing nothing', async () => {
      const uuid = newUuid();
      await rejectsStorage(driver.createImport(uuid, { expectedSize: 2 ** 52 }), 'no-space');
      assert.deepEqual(await s.storedNames(uuid), []);
    });

    test('commit is idempotent; abort after commit keeps the image', async () => {
      const uuid = newUuid();
      const target = await driver.createImport(uuid);
      await pipeline(Readable.from([bytes.subarray(0, 3000)]), target.stream);
      await target.commit();
      await target.commit();
      await target.abort();
      assert.ok((await readAll(await driver.readStream(target.installPath))).equals(bytes.subarray(0, 3000)));
      await driver.delete(target.installPath);
    });

    test('abort leaves no byte behind; abort is idempotent; commit after abort is refused', async () => {
      const uuid = newUuid();
      const target = await driver.createImport(uuid);
      target.stream.write(bytes.subarray(0, 100_000));
      await new Promise((r) => setTimeout(r, 50));
      await target.abort();
      await target.abort();
      assert.deepEqual(await s.storedNames(uuid), []);
      await rejectsStorage(target.commit(), 'invalid', /aborted/);
      await rejectsStorage(driver.open(s.installPathOf(uuid)), 'not-found');
      // The uuid is free again.
      const again = await store(uuid, bytes.subarray(0, 10));
      assert.ok((await readAll(await driver.readStream(again))).equals(bytes.subarray(0, 10)));
      await driver.delete(again);
    });

    test('a source that fails midway, then abort, leaves no byte behind', async () => {
      const uuid = newUuid();
      const target = await driver.createImport(uuid);
      const failing = Readable.from(
        (function* () {
          yield bytes.subarray(0, MiB);
          throw new Error('source broke');
        })(),
      );
      await assert.rejects(pipeline(failing, target.stream), /source broke/);
      await target.abort();
      assert.deepEqual(await s.storedNames(uuid), []);
      await rejectsStorage(driver.open(s.installPathOf(uuid)), 'not-found');
    });

    test('an empty image can be stored and read back', async () => {
      const p = await store(newUuid(), Buffer.alloc(0));
      const src = await driver.open(p);
      try {
        assert.equal(await src.size(), 0);
        assert.equal((await src.read(0, 10)).length, 0);
      } finally {
        await src.close();
      }
      assert.equal((await readAll(await driver.readStream(p))).length, 0);
      await driver.delete(p);
    });

    test('open: size, reads anywhere, clipped at the end, empty at and after it', async () => {
      const src = await driver.open(stored);
      try {
        assert.equal(await src.size(), IMAGE_SIZE);
        for (const [off, len] of [
          [0, 512],
          [1, 1],
          [MiB - 7, 2 * MiB + 14],
          [4 * MiB + 3, MiB],
          [0, IMAGE_SIZE],
        ] as const) {
          assert.ok(Buffer.from(await src.read(off, len)).equals(bytes.subarray(off, off + len)), `read(${off}, ${len})`);
        }
        assert.ok(Buffer.from(await src.read(IMAGE_SIZE - 10, 100)).equals(bytes.subarray(IMAGE_SIZE - 10)));
        assert.equal((await src.read(IMAGE_SIZE, 10)).length, 0);
        assert.equal((await src.read(IMAGE_SIZE + 1000, 10)).length, 0);
        assert.equal((await src.read(5, 0)).length, 0);
      } finally {
        await src.close();
      }
    });

    test('open: a bad offset or length is invalid; a closed source refuses reads; close is idempotent', async () => {
      const src = await driver.open(stored);
      for (const [off, len] of [
        [-1, 10],
        [0, -1],
        [1.5, 10],
        [0, 2.5],
        [Number.NaN, 1],
        [2 ** 60, 1],
      ] as const) {
        await rejectsStorage(src.read(off, len), 'invalid');
      }
      await src.close();
      await src.close();
      await rejectsStorage(src.read(0, 1), 'invalid', /closed/);
      await rejectsStorage(src.size(), 'invalid', /closed/);
    });

    test('readStream: the whole image, and byte ranges with an inclusive end, clipped at the end', async () => {
      assert.ok((await readAll(await driver.readStream(stored))).equals(bytes));
      for (const [start, end] of [
        [0, 0],
        [0, 511],
        [MiB - 1, MiB],
        [3 * MiB + 5, 5 * MiB + 4],
        [IMAGE_SIZE - 1, IMAGE_SIZE - 1],
      ] as const) {
        const got = await readAll(await driver.readStream(stored, { start, end }));
        assert.ok(got.equals(bytes.subarray(start, end + 1)), `${start}-${end}: ${got.length} bytes`);
      }
      assert.ok((await readAll(await driver.readStream(stored, { start: 4 * MiB }))).equals(bytes.subarray(4 * MiB)));
      assert.ok((await readAll(await driver.readStream(stored, { end: 99 }))).equals(bytes.subarray(0, 100)));
      assert.ok((await readAll(await driver.readStream(stored, { start: 10, end: IMAGE_SIZE + MiB }))).equals(bytes.subarray(10)));
      assert.equal((await readAll(await driver.readStream(stored, { start: IMAGE_SIZE + 5 }))).length, 0);
    });

    test('readStream: a bad range is invalid', async () => {
      await rejectsStorage(driver.readStream(stored, { start: 10, end: 9 }), 'invalid', /before start/);
      await rejectsStorage(driver.readStream(stored, { start: -1 }), 'invalid', /start must be a non-negative integer/);
      await rejectsStorage(driver.readStream(stored, { end: 1.5 }), 'invalid', /end must be a non-negative integer/);
      await rejectsStorage(driver.readStream(stored, { start: 2 ** 60 }), 'invalid');
    });

    test('readStream: an aborted signal refuses at once; an abort midway ends the stream with an error', async () => {
      const pre = new AbortController();
      pre.abort();
      await assert.rejects(driver.readStream(stored, { signal: pre.signal }), { name: 'AbortError' });
      for (const range of [{}, { start: 1 }]) {
        const ac = new AbortController();
        const stream = await driver.readStream(stored, { ...range, signal: ac.signal });
        await assert.rejects(
          (async () => {
            for await (const _chunk of stream) ac.abort();
          })(),
          { name: 'AbortError' },
        );
      }
    });

    test('stat (where the driver has it): the stored length', async (t) => {
      if (!driver.stat) return t.skip(`${driver.type} has no stat()`);
      const st = await driver.stat(stored);
      assert.equal(st.size, IMAGE_SIZE);
      if (st.mtimeMs !== undefined) assert.ok(st.mtimeMs > 0 && st.mtimeMs <= Date.now() + 1000);
    });

    test('allocatedSize: the bytes the image occupies, more than none for written bytes', async () => {
      const n = await driver.allocatedSize(stored);
      assert.ok(Number.isSafeInteger(n) && n > 0, String(n));
    });

    test('hash: MD5 and SHA-256 of every byte; progress never past the size', async () => {
      const seen: Array<[number, number]> = [];
      const digests = await driver.hash(stored, ['MD5', 'SHA256'], { onProgress: (done, total) => seen.push([done, total]) });
      assert.equal(digests.MD5, createHash('md5').update(bytes).digest('hex'));
      assert.equal(digests.SHA256, createHash('sha256').update(bytes).digest('hex'));
      for (const [done, total] of seen) {
        assert.equal(total, IMAGE_SIZE);
        assert.ok(done >= 0 && done <= total, `${done}/${total}`);
      }
    });

    test('hash: an aborted signal refuses', async () => {
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(driver.hash(stored, ['SHA256'], { signal: ac.signal }), { name: 'AbortError' });
    });

    test('a missing image is not-found for open, readStream, stat, allocatedSize and hash', async () => {
      const missing = s.installPathOf(newUuid());
      await rejectsStorage(driver.open(missing), 'not-found');
      await rejectsStorage(driver.readStream(missing), 'not-found');
      await rejectsStorage(driver.readStream(missing, { start: 1, end: 2 }), 'not-found');
      if (driver.stat) await rejectsStorage(driver.stat(missing), 'not-found');
      await rejectsStorage(driver.allocatedSize(missing), 'not-found');
      await rejectsStorage(driver.hash(missing, ['MD5']), 'not-found');
    });

    test('delete removes the image; deleting a missing one is no error', async () => {
      const uuid = newUuid();
      const p = await store(uuid, bytes.subarray(0, 5000));
      await driver.delete(p);
      assert.deepEqual(await s.storedNames(uuid), []);
      await rejectsStorage(driver.open(p), 'not-found');
      await driver.delete(p);
      await driver.delete(s.installPathOf(newUuid()));
    });

    test('discard removes a committed image and a partial import; nothing stored is no error', async () => {
      const uuid = newUuid();
      await store(uuid, bytes.subarray(0, 5000));
      await driver.discard(uuid);
      assert.deepEqual(await s.storedNames(uuid), []);

      // All bytes written, never committed: what a crash before commit leaves behind.
      const partial = newUuid();
      const target = await driver.createImport(partial);
      await pipeline(Readable.from([bytes.subarray(0, 50_000)]), target.stream);
      assert.notDeepEqual(await s.storedNames(partial), []);
      await driver.discard(partial);
      assert.deepEqual(await s.storedNames(partial), []);
      await target.abort().catch(() => undefined);

      await driver.discard(newUuid());
    });

    test('resumeImport (optional): suspended partial bytes are continued at an offset, past it dropped; abort after suspend removes them', async (t) => {
      if (!driver.resumeImport) {
        t.skip('this driver keeps an import in the process that created it (no resumeImport)');
        return;
      }
      const uuid = newUuid();
      const first = await driver.createImport(uuid, { expectedSize: bytes.length });
      assert.ok(isResumable(first), 'createImport of a driver with resumeImport gives a ResumableImport');
      const cut = MiB + 777;
      // 100 bytes more than the offset the next writer resumes at: a writer that died after its last record.
      await writeAll(first.stream, bytes.subarray(0, cut + 100));
      await first.suspend();
      assert.equal((await s.storedNames(uuid)).length, 1, 'the partial bytes stay');
      await rejectsStorage(driver.resumeImport(uuid, first.tempName, cut + 101 + MiB), 'invalid');
      await rejectsStorage(driver.resumeImport(uuid, '../../etc/passwd', 0), 'invalid');
      const next = await driver.resumeImport(uuid, first.tempName, cut);
      assert.ok((await readAll(await next.readBefore())).equals(bytes.subarray(0, cut)), 'readBefore gives the bytes before the offset');
      await pipeline(Readable.from([bytes.subarray(cut)]), next.stream);
      await next.commit();
      assert.equal(next.installPath, s.installPathOf(uuid));
      assert.ok((await readAll(await driver.readStream(next.installPath))).equals(bytes));
      await driver.delete(next.installPath);

      const other = newUuid();
      const abandoned = await driver.createImport(other);
      assert.ok(isResumable(abandoned));
      await writeAll(abandoned.stream, bytes.subarray(0, 4096));
      await abandoned.suspend();
      await abandoned.abort();
      assert.deepEqual(await s.storedNames(other), []);
    });

    test('an image uuid that cannot be a stored name is invalid (createImport, discard)', async () => {
      for (const bad of ['', '../escape', 'a/b', '.hidden', '-dash', 'with space', 'a\0b', 'x'.repeat(129), 'ü']) {
        await rejectsStorage(driver.createImport(bad), 'invalid', /image uuid/);
        await rejectsStorage(driver.discard(bad), 'invalid', /image uuid/);
      }
      await rejectsStorage(driver.createImport(undefined as unknown as string), 'invalid', /image uuid/);
    });

    test('an install path outside the storage is invalid for every call that takes one', async () => {
      assert.ok(s.outsidePaths.length > 0);
      for (const p of s.outsidePaths) {
        await rejectsStorage(driver.open(p), 'invalid');
        await rejectsStorage(driver.readStream(p), 'invalid');
        if (driver.stat) await rejectsStorage(driver.stat(p), 'invalid');
        await rejectsStorage(driver.allocatedSize(p), 'invalid');
        await rejectsStorage(driver.hash(p, ['MD5']), 'invalid');
        await rejectsStorage(driver.delete(p), 'invalid');
      }
    });
  });
}
