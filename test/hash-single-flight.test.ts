/**
 * Single flight for CalculateImageHash: identical concurrent calls share one read of the copy (counted by
 * the bytes-hashed metric and the reads started), a caller for another algorithm joins a read still queued
 * and gets its own digest, a caller for another algorithm of a running read gets a read of its own, and each
 * caller cancels only itself; the read stops when its last caller leaves. On SFTP one `openssl dgst` on the
 * host serves every caller.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readlink, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, startSshd, userDir, type TestSshd } from './helpers/sshd.js';
import { opensslDigest, startInProcess, tempDir, waitFor, type TestServer, ZClient } from './helpers/zimage.js';

const SIZE = 512 * 1024 ** 2; // random head, sparse tail: SM3 over it takes seconds on a busy 2-core machine
const SLOW = 'SM3';

describe('CalculateImageHash single flight', () => {
  let server: TestServer;
  let work: string;
  let c: ZClient;
  let bs: string;
  const images: Array<{ uuid: string; path: string }> = [];
  const expected = new Map<string, string>();

  before(async () => {
    work = await tempDir();
    const fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    await mkdir(join(work, 'storage'));
    // One heavy-job slot: a caller that queued for a slot of its own would show Queued and wait for the read.
    server = await startInProcess({ syncWaitMs: 0, maxConcurrentHeavyJobs: 1 }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(join(work, 'storage'))).uuid;
    for (const name of ['a', 'b']) {
      await writeFile(join(fixtures, `${name}.raw`), randomBytes(4 * 1024 * 1024));
      const res = await c.call('POST', '/images', {
        params: { name, url: `file://${join(fixtures, `${name}.raw`)}`, format: 'raw', backupStorageUuids: [bs] },
      });
      assert.equal(res.status, 200, res.text);
      const path = res.body.inventory.backupStorageRefs[0].installPath as string;
      await truncate(path, SIZE);
      images.push({ uuid: res.body.inventory.uuid, path });
    }
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const digestOf = async (image: { path: string }, alg: string): Promise<string> => {
    const key = `${image.path} ${alg}`;
    if (!expected.has(key)) expected.set(key, await opensslDigest(image.path, alg));
    return expected.get(key)!;
  };
  const startHash = async (image: { uuid: string }, algorithm: string): Promise<string> => {
    const res = await c.raw('PUT', `/images/${image.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm } });
    assert.equal(res.status, 202, res.text);
    return res.body.location.split('/').pop() as string;
  };
  const progressOf = async (job: string) => (await c.raw('GET', `/task-progresses/${job}`)).body.inventories[0];
  const finalOf = (job: string) => c.poll(`${server.url}/zstack/v1/api-jobs/${job}`, 300_000);
  const waitRunning = (job: string) =>
    waitFor(
      `job ${job} reading`,
      async () => {
        const p = await progressOf(job);
        return p.opaque.state === 'Running' && p.opaque.bytesDone > 0;
      },
      60_000,
    );
  /** Until each job waits on a running read (a job is accepted before it reaches the read). */
  const waitJoined = async (jobs: string[]) => {
    for (const job of jobs) await waitFor(`job ${job} joined`, async () => (await progressOf(job)).opaque.state === 'Running', 60_000);
  };
  const cancel = async (job: string) => {
    const res = await c.call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(res.status, 200, res.text);
  };
  const bytesHashed = async (): Promise<number> => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('zimage_bytes_hashed_total{'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const flights = () => server.app!.services.measurer.flights;
  /** Descriptors of this process (the server runs in it) open on the file. */
  const openOn = async (path: string): Promise<number> => {
    let n = 0;
    for (const fd of await readdir('/proc/self/fd')) {
      if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === path) n++;
    }
    return n;
  };
  const assertDigest = async (job: string, image: { path: string }, alg: string) => {
    const res = await finalOf(job);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.md5Sum, await digestOf(image, alg), `${alg} of job ${job}`);
  };

  test('5 concurrent identical calls: one read, joiners take no slot, every caller gets the digest', async () => {
    const [a] = images;
    const bytes0 = await bytesHashed();
    const reads0 = flights().readsStarted;
    const first = await startHash(a!, SLOW);
    await waitRunning(first);
    const joiners = await Promise.all([1, 2, 3, 4].map(() => startHash(a!, SLOW)));
    // Only one slot, held by the read: a joiner waiting for a slot of its own would stay Queued until it ends.
    await waitJoined(joiners);
    assert.equal((await progressOf(first)).opaque.state, 'Running', 'the joiners run while the read holds the only slot');
    for (const job of [first, ...joiners]) await assertDigest(job, a!, SLOW);
    assert.equal(flights().readsStarted - reads0, 1, 'one read for 5 callers');
    assert.equal((await bytesHashed()) - bytes0, SIZE, 'the bytes-hashed counter grew by one image');
    const last = await progressOf(joiners.at(-1)!);
    assert.equal(last.opaque.bytesDone, SIZE, "a joiner's progress shows the shared read's bytes");
  });

  test('a caller for another algorithm joins a queued read and gets the digest of its own algorithm', async () => {
    const [a, b] = images;
    const bytes0 = await bytesHashed();
    const reads0 = flights().readsStarted;
    const blocker = await startHash(b!, SLOW); // holds the only slot
    await waitRunning(blocker);
    const sha = await startHash(a!, 'SHA256');
    await waitFor('the SHA256 read queued', () => flights().size === 2);
    const md5 = await startHash(a!, 'MD5');
    const sha512 = await startHash(a!, 'SHA512');
    await waitFor('MD5 and SHA512 waiting', () => flights().waiting === 4, 60_000);
    assert.equal(flights().size, 2, 'MD5 and SHA512 joined the queued SHA256 read');
    assert.equal((await progressOf(blocker)).opaque.state, 'Running', 'they joined while the read was queued');
    for (const job of [sha, md5, sha512]) assert.equal((await progressOf(job)).opaque.state, 'Queued');
    await assertDigest(blocker, b!, SLOW);
    await assertDigest(sha, a!, 'SHA256');
    await assertDigest(md5, a!, 'MD5');
    await assertDigest(sha512, a!, 'SHA512');
    assert.equal(flights().readsStarted - reads0, 2, 'one read of each image');
    assert.equal((await bytesHashed()) - bytes0, 2 * SIZE);
  });

  test('a caller for another algorithm of a running read gets a read of its own, after it', async () => {
    const [a] = images;
    const reads0 = flights().readsStarted;
    const first = await startHash(a!, SLOW);
    await waitRunning(first);
    const other = await startHash(a!, 'SHA1');
    await waitFor('the SHA1 read queued', () => flights().size === 2, 60_000);
    assert.equal((await progressOf(first)).opaque.state, 'Running');
    assert.equal((await progressOf(other)).opaque.state, 'Queued', 'it waits for the slot like any heavy job');
    await assertDigest(first, a!, SLOW);
    await assertDigest(other, a!, 'SHA1');
    assert.equal(flights().readsStarted - reads0, 2);
  });

  test('cancelling one caller (even the first) leaves the others running to the right digest', async () => {
    const [a] = images;
    const bytes0 = await bytesHashed();
    const reads0 = flights().readsStarted;
    const first = await startHash(a!, SLOW);
    await waitRunning(first);
    const others = await Promise.all([1, 2].map(() => startHash(a!, SLOW)));
    await waitJoined(others);
    await cancel(first);
    const cancelled = await finalOf(first);
    assert.equal(cancelled.status, 503, cancelled.text);
    assert.equal(cancelled.body.error.code, 'SYS.1017');
    for (const job of others) await assertDigest(job, a!, SLOW);
    assert.equal(flights().readsStarted - reads0, 1, 'the read went on for the others');
    assert.equal((await bytesHashed()) - bytes0, SIZE);
  });

  test('cancelling every caller aborts the read; the next call reads afresh', async () => {
    const [a] = images;
    const bytes0 = await bytesHashed();
    const reads0 = flights().readsStarted;
    const first = await startHash(a!, SLOW);
    await waitRunning(first);
    const others = await Promise.all([1, 2].map(() => startHash(a!, SLOW)));
    await waitJoined(others);
    assert.ok((await openOn(a!.path)) >= 1, 'the read has the image open');
    for (const job of [first, ...others]) await cancel(job);
    for (const job of [first, ...others]) {
      const res = await finalOf(job);
      assert.equal(res.body.error?.code, 'SYS.1017', res.text);
      assert.ok((await progressOf(job)).opaque.bytesDone < SIZE, 'stopped before the end');
    }
    await waitFor('the read to close the image', async () => (await openOn(a!.path)) === 0 && flights().size === 0, 10_000);
    assert.equal(await bytesHashed(), bytes0, 'no completed read was counted');
    const again = await startHash(a!, SLOW);
    await assertDigest(again, a!, SLOW);
    assert.equal(flights().readsStarted - reads0, 2);
  });
});

describe('CalculateImageHash single flight on SFTP (openssl on the host)', () => {
  let sshd: TestSshd;
  let server: TestServer;
  let work: string;
  let c: ZClient;
  let bs: string;
  let image: { uuid: string; path: string };

  before(async () => {
    sshd = await startSshd();
    work = await tempDir('zimage-flight-sftp-');
    await chmod(work, 0o755);
    const fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    const root = await userDir(join(work, 'bs'));
    server = await startInProcess({ syncWaitMs: 0, maxConcurrentHeavyJobs: 1 }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    c = server.client;
    await c.login();
    const added = await c.call('POST', '/backup-storage/sftp', {
      params: {
        name: 'sftp',
        hostname: '127.0.0.1',
        sshPort: sshd.port,
        username: PASSWORD_USER,
        password: PASSWORD_USER_PASSWORD,
        url: `${root}/`,
      },
    });
    assert.equal(added.status, 200, added.text);
    bs = added.body.inventory.uuid;
    await writeFile(join(fixtures, 'a.raw'), randomBytes(4 * 1024 * 1024));
    const res = await c.call('POST', '/images', {
      params: { name: 'a', url: `file://${join(fixtures, 'a.raw')}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    image = { uuid: res.body.inventory.uuid, path: res.body.inventory.backupStorageRefs[0].installPath };
    await truncate(image.path, SIZE); // the "host" is this machine
  });

  after(async () => {
    await server?.stop();
    await sshd?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('3 concurrent identical calls share one remote read; cancelling one leaves the others to the digest', async () => {
    const start = async (): Promise<string> => {
      const res = await c.raw('PUT', `/images/${image.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: SLOW } });
      assert.equal(res.status, 202, res.text);
      return res.body.location.split('/').pop() as string;
    };
    const state = async (job: string) => (await c.raw('GET', `/task-progresses/${job}`)).body.inventories[0].opaque;
    const flights = server.app!.services.measurer.flights;
    const reads0 = flights.readsStarted;
    const first = await start();
    await waitFor(
      'the remote read running',
      async () => {
        const s = await state(first);
        return s.state === 'Running' && s.bytesDone > 0;
      },
      60_000,
    );
    const others = [await start(), await start()];
    for (const job of others) await waitFor(`job ${job} joined`, async () => (await state(job)).state === 'Running', 60_000);
    const cancel = await c.call('PUT', `/longjobs/${others[0]}/actions`, { cancelLongJob: {} });
    assert.equal(cancel.status, 200, cancel.text);
    const expected = await opensslDigest(image.path, SLOW);
    for (const job of [first, others[1]!]) {
      const res = await c.poll(`${server.url}/zstack/v1/api-jobs/${job}`, 300_000);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.inventory.md5Sum, expected);
    }
    const cancelled = await c.poll(`${server.url}/zstack/v1/api-jobs/${others[0]}`);
    assert.equal(cancelled.body.error?.code, 'SYS.1017', cancelled.text);
    assert.equal(flights.readsStarted - reads0, 1, 'one openssl run on the host for 3 callers');
  });
});
