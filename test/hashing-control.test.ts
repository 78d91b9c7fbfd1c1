/** Progress, abort, pool health, concurrency and process lifetime of src/hashing. */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import {
  createHashingTee,
  hashFile,
  hashPoolStats,
  hashStream,
  MultiDigest,
  shutdownHashPool,
  type DigestAlgorithm,
} from '../src/hashing/index.js';
import { ProgressThrottle } from '../src/hashing/errors.js';
import {
  chunked,
  collectUnhandledRejections,
  ENGINE_TS_URL,
  makeSparseFile,
  makeTempDir,
  MiB,
  openFdCount,
  opensslDigests,
  runNodeModule,
  sleep,
  writeRandomFile,
} from './helpers/hashing-fixtures.js';

const unhandled = collectUnhandledRejections();
let tmp: { dir: string; cleanup: () => Promise<void> };
/** Big enough that hashing takes about a second: 768 MiB of zeros (sparse). */
const BIG = 768 * MiB;
let big: string;
let small: { path: string; bytes: Buffer; expected: Record<string, string> };

before(async () => {
  tmp = await makeTempDir('hashing-control');
  big = await makeSparseFile(tmp.dir, 'big.img', BIG);
  const f = await writeRandomFile(tmp.dir, 'small.bin', 3 * MiB + 17);
  small = { ...f, expected: await opensslDigests(['MD5', 'SHA1', 'SHA256', 'SHA512'], f.path) };
});

after(async () => {
  await tmp?.cleanup();
});

async function poolSettles(): Promise<void> {
  for (let i = 0; i < 200 && hashPoolStats().idle < hashPoolStats().workers; i++) await sleep(10);
  assert.equal(hashPoolStats().idle, hashPoolStats().workers, 'every worker is back in the pool');
}

async function poolStillWorks(): Promise<void> {
  const d = await hashFile(small.path, { algorithms: ['MD5', 'SHA256', 'SHA512'] });
  assert.deepEqual(d, { MD5: small.expected.MD5, SHA256: small.expected.SHA256, SHA512: small.expected.SHA512 });
}

for (const algorithms of [['MD5'], ['MD5', 'SHA256']] as DigestAlgorithm[][]) {
  test(`hashFile progress (${algorithms.join('+')}) rises monotonically, is throttled and ends at the total`, async () => {
    const seen: { bytes: number; at: number }[] = [];
    const t0 = performance.now();
    await hashFile(big, { algorithms, onProgress: (bytes) => seen.push({ bytes, at: performance.now() }) });
    const ms = performance.now() - t0;
    assert.ok(seen.length >= 3, `${seen.length} progress calls in ${ms.toFixed(0)} ms`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.bytes >= seen[i - 1]!.bytes, 'monotonic');
    assert.equal(seen.at(-1)!.bytes, BIG, 'ends at the total');
    const between = new Set(seen.filter((s) => s.bytes > 0 && s.bytes < BIG).map((s) => s.bytes));
    assert.ok(between.size >= 2, 'intermediate values before the end');
    // throttled: at most one call per 100 ms, plus the final one
    for (let i = 1; i < seen.length - 1; i++) assert.ok(seen[i]!.at - seen[i - 1]!.at >= 99, 'throttled');
  });
}

test('progress throttle: a report just before the pending trailing timer does not make that timer report at once', async () => {
  const calls: number[] = [];
  let current = 0;
  const reportLate = (): void => {
    while (performance.now() - calls[1]! < 100.5); // just past the interval, before the trailing timer runs
    current += 10;
    throttle.report(current);
    current += 10; // what the pending trailing timer would send right away
  };
  const onProgress = (): void => {
    calls.push(performance.now());
    if (calls.length === 2) setTimeout(reportLate, 90);
  };
  const throttle = new ProgressThrottle(onProgress, 100, { current: () => current, submitted: () => 1e9 });
  await sleep(101);
  current = 10;
  throttle.report(current); // call 1; its trailing timer makes call 2 with 20
  current = 20;
  await sleep(500);
  throttle.stop();
  const gaps = calls.slice(1).map((t, i) => t - calls[i]!);
  assert.ok(calls.length >= 3, `${calls.length} calls`);
  assert.ok(
    gaps.every((g) => g >= 99),
    `at most one call per 100 ms; gaps ${gaps.map((g) => g.toFixed(1)).join(', ')} ms`,
  );
});

test('hashStream and the tee report progress ending at the total', async () => {
  const bytes = Buffer.alloc(6 * MiB, 7);
  const a: number[] = [];
  await hashStream(chunked(bytes, 256 * 1024, 10), { algorithms: ['MD5', 'SHA1'], onProgress: (b) => a.push(b) });
  assert.ok(a.length >= 2);
  assert.equal(a.at(-1), bytes.length);
  for (let i = 1; i < a.length; i++) assert.ok(a[i]! >= a[i - 1]!);

  const t: number[] = [];
  const tee = createHashingTee({ algorithms: ['SHA256'], onProgress: (b) => t.push(b) });
  await pipeline(Readable.from(chunked(bytes, 256 * 1024, 10)), tee, new Writable({ write: (_c, _e, cb) => cb() }));
  assert.ok(t.length >= 2);
  assert.equal(t.at(-1), bytes.length);
  for (let i = 1; i < t.length; i++) assert.ok(t[i]! >= t[i - 1]!);
});

for (const algorithms of [['SHA512'], ['MD5', 'SHA256']] as DigestAlgorithm[][]) {
  test(`hashFile abort mid-way (${algorithms.join('+')}): prompt AbortError, descriptor closed, pool healthy`, async () => {
    await poolStillWorks(); // the pool exists before counting descriptors
    const fds = openFdCount();
    const ac = new AbortController();
    let progressed = 0;
    let abortedAt = 0;
    const job = hashFile(big, {
      algorithms,
      signal: ac.signal,
      onProgress: (b) => {
        progressed = b;
        if (b > 0 && abortedAt === 0) {
          abortedAt = performance.now();
          ac.abort();
        }
      },
    });
    await assert.rejects(job, (e: Error) => e.name === 'AbortError');
    const latency = performance.now() - abortedAt;
    assert.ok(abortedAt > 0, 'aborted from a progress callback');
    assert.ok(progressed < BIG, 'stopped before the end');
    // Generous for a loaded CI machine: finishing the 768 MiB read would take seconds.
    assert.ok(latency < 1000, `rejected ${latency.toFixed(1)} ms after abort()`);
    assert.equal(openFdCount(), fds, 'file descriptor closed');
    await poolSettles();
    await poolStillWorks();
  });
}

test('abort with a timer while hashing several algorithms; an already-aborted signal rejects at once', async () => {
  const signal = AbortSignal.timeout(150);
  const t0 = performance.now();
  await assert.rejects(hashFile(big, { algorithms: ['MD5', 'SHA1', 'SHA256'], signal }), { name: 'AbortError' });
  assert.ok(performance.now() - t0 < 1200, 'rejected soon after the 150 ms timer, long before three digests of 768 MiB');

  const ac = new AbortController();
  ac.abort();
  const fds = openFdCount();
  await assert.rejects(hashFile(big, { algorithms: ['MD5'], signal: ac.signal }), { name: 'AbortError' });
  await assert.rejects(hashStream(chunked(Buffer.alloc(10), 1), { algorithms: ['MD5'], signal: ac.signal }), {
    name: 'AbortError',
  });
  assert.throws(() => new MultiDigest(['MD5', 'SHA256'], { signal: ac.signal }), { name: 'AbortError' });
  assert.equal(openFdCount(), fds);
  await poolSettles();
  await poolStillWorks();
});

test('hashStream abort while the source is stalled rejects promptly and closes the source', async () => {
  const ac = new AbortController();
  let pushed = false;
  const source = new Readable({
    read() {
      if (!pushed) {
        pushed = true;
        this.push(Buffer.alloc(1000, 1));
      } // then never pushes again: a stalled network peer
    },
  });
  const job = hashStream(source, { algorithms: ['MD5', 'SHA256'], signal: ac.signal });
  await sleep(50);
  const t0 = performance.now();
  ac.abort();
  await assert.rejects(job, { name: 'AbortError' });
  assert.ok(performance.now() - t0 < 1000, 'rejected promptly although the source never ends');
  await sleep(10);
  assert.equal(source.destroyed, true, 'source destroyed');
  await poolSettles();
});

test('MultiDigest abort: pending and later calls reject with AbortError; destroy() is safe', async () => {
  const ac = new AbortController();
  const md = new MultiDigest(['MD5', 'SHA256'], { signal: ac.signal });
  const chunk = Buffer.alloc(4 * MiB, 3);
  await md.update(chunk);
  const pending = Array.from({ length: 8 }, () => md.update(chunk)); // more than the ring holds: back-pressure
  ac.abort();
  const results = await Promise.allSettled(pending);
  assert.ok(results.some((r) => r.status === 'rejected'));
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as Error).name, 'AbortError');
  await assert.rejects(md.digest(), { name: 'AbortError' });
  md.destroy();
  md.destroy();
  await poolSettles();
});

test('createHashingTee abort fails the pipeline and digests() with AbortError', async () => {
  const ac = new AbortController();
  const tee = createHashingTee({ algorithms: ['MD5', 'SHA256'], signal: ac.signal });
  const run = pipeline(Readable.from(chunked(Buffer.alloc(64 * MiB), MiB, 5)), tee, new Writable({ write: (_c, _e, cb) => cb() }));
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(run, { name: 'AbortError' });
  await assert.rejects(tee.digests(), { name: 'AbortError' });
  assert.ok(tee.bytesHashed > 0 && tee.bytesHashed < 64 * MiB);
  await poolSettles();
});

test('a worker dying mid-job fails that job, not the pool', async () => {
  // Shut the pool down only once the workers have hashed bytes of this job (a fixed sleep raced on busy machines:
  // the job could still be waiting for a worker and then ran on the next pool).
  let started!: () => void;
  const hashing = new Promise<void>((resolve) => (started = resolve));
  const job = hashFile(big, { algorithms: ['MD5', 'SHA256'], onProgress: (done) => done > 0 && started() });
  const failed = assert.rejects(job, /worker/);
  let timer: NodeJS.Timeout | undefined;
  const tooLong = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error('the job hashed nothing within 30 s')), 30_000)),
  );
  await Promise.race([hashing, tooLong]).finally(() => clearTimeout(timer));
  await shutdownHashPool(); // terminates the threads under the running job
  await failed;
  await poolStillWorks();
});

test('concurrent jobs (more than the pool holds) all give correct digests', async () => {
  const { maxWorkers } = hashPoolStats();
  const algorithms: DigestAlgorithm[] = ['MD5', 'SHA1', 'SHA256', 'SHA512'];
  const want = (algs: DigestAlgorithm[]) => Object.fromEntries(algs.map((a) => [a, small.expected[a]]));
  const jobs: Promise<unknown>[] = [];
  const n = Math.ceil(maxWorkers / algorithms.length) + 2; // some of them find the pool full
  for (let i = 0; i < n; i++) {
    jobs.push(hashFile(small.path, { algorithms }).then((d) => assert.deepEqual(d, want(algorithms))));
    jobs.push(
      hashStream(chunked(small.bytes, 100_000 + i), { algorithms: ['MD5', 'SHA256'] }).then((d) =>
        assert.deepEqual(d, want(['MD5', 'SHA256'])),
      ),
    );
    jobs.push(hashFile(small.path, { algorithms: ['SHA1'], start: 0 }).then((d) => assert.deepEqual(d, want(['SHA1']))));
  }
  await Promise.all(jobs);
  assert.ok(hashPoolStats().workers <= maxWorkers);
  await poolSettles();
});

test('the process exits by itself: top-level await works, idle and leaked jobs keep nothing alive', async () => {
  const code = `
    import { hashFile, MultiDigest } from ${JSON.stringify(ENGINE_TS_URL)};
    const d = await hashFile(${JSON.stringify(small.path)}, { algorithms: ['MD5', 'SHA256'] });
    const leaked = new MultiDigest(['SHA1', 'SHA512']);
    await leaked.update(Buffer.alloc(1 << 20));
    process.stdout.write(JSON.stringify(d));
  `;
  const r = await runNodeModule(code, { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { MD5: small.expected.MD5, SHA256: small.expected.SHA256 });
  assert.ok(r.ms < 10_000, `exited after ${r.ms.toFixed(0)} ms`);
});

test('no unhandled rejections', async () => {
  await sleep(50);
  assert.deepEqual(unhandled(), []);
});

test('a stream that stalls still reports, shortly after, every byte it delivered', async () => {
  const { createHashingTee } = await import('../src/hashing/engine.js');
  const { PassThrough, Writable } = await import('node:stream');
  const seen: number[] = [];
  const tee = createHashingTee({ algorithms: ['MD5', 'SHA256'], onProgress: (n) => seen.push(n) });
  const src = new PassThrough();
  src.pipe(tee).pipe(new Writable({ write: (_c, _e, cb) => cb() }));
  const delivered = 12 * 1024 * 1024;
  for (let i = 0; i < delivered; i += 1024 * 1024) src.write(Buffer.alloc(1024 * 1024, i & 0xff));
  // The source now stalls: no more bytes, no end.
  const deadline = Date.now() + 3000;
  while ((seen.at(-1) ?? 0) < delivered) {
    assert.ok(Date.now() < deadline, `progress stuck at ${seen.at(-1)} of ${delivered}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  tee.destroy();
  src.destroy();
});
