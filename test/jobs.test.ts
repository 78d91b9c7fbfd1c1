/**
 * Long operations: progress under the job uuid, cancel (SYS.1017), timeout (SYS.1001), the heavy-job
 * queue, expected-checksum tags, and a process killed mid-job (the job still gets a terminal answer).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { opensslDigest, startInProcess, startProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';

const BIG = 1024 ** 3; // sparse: hashing it reads 1 GiB of zeros, about a second or two

describe('job control', () => {
  let server: TestServer;
  let work: string;
  let fixtures: string;
  let bs: string;
  let c: ZClient;
  let big: { uuid: string; md5Sum: string; path: string };
  let http: TestHttpServer;

  before(async () => {
    work = await tempDir();
    fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    await mkdir(join(work, 'storage'));
    await writeFile(join(fixtures, 'small.raw'), randomBytes(2 * 1024 * 1024));
    http = await startTestHttpServer({ 'small.raw': { path: join(fixtures, 'small.raw') } });
    server = await startInProcess({ syncWaitMs: 0, maxConcurrentHeavyJobs: 1 }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(join(work, 'storage'))).uuid;
    const res = await c.call('POST', '/images', {
      params: { name: 'big', url: `file://${join(fixtures, 'small.raw')}`, backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    const path = res.body.inventory.backupStorageRefs[0].installPath;
    await truncate(path, BIG); // the stored copy becomes a large sparse image
    big = { uuid: res.body.inventory.uuid, md5Sum: res.body.inventory.md5Sum, path };
  });

  after(async () => {
    await server?.stop();
    await http?.close();
    await rm(work, { recursive: true, force: true });
  });

  const startHash = async (algorithm = 'MD5', headers: Record<string, string> = {}) => {
    const res = await c.raw('PUT', `/images/${big.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm } }, headers);
    assert.equal(res.status, 202, res.text);
    return res.body.location.split('/').pop() as string;
  };
  const progressOf = async (job: string) => (await c.raw('GET', `/task-progresses/${job}`)).body.inventories[0];
  const finalOf = (job: string) => c.poll(`${server.url}/zstack/v1/api-jobs/${job}`);

  test('progress rises monotonically to 100 and the job record carries bytes and throughput', async () => {
    const job = await startHash('SHA256');
    const seen: number[] = [];
    for (;;) {
      const p = await progressOf(job);
      assert.equal(p.type, 'Progress');
      assert.equal(p.taskName, 'CalculateImageHash');
      seen.push(Number(p.content));
      if (p.opaque.state === 'Succeeded') {
        assert.equal(p.opaque.bytesDone, BIG);
        assert.equal(p.opaque.bytesTotal, BIG);
        assert.ok(p.opaque.bytesPerSecond > 0);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `progress went back: ${seen.join(',')}`);
    assert.equal(seen.at(-1), 100);
    assert.ok(
      seen.some((p) => p > 0 && p < 100),
      `an intermediate percentage was reported: ${seen.join(',')}`,
    );
    const done = await finalOf(job);
    assert.equal(done.status, 200);
    assert.equal(done.body.inventory.md5Sum, await opensslDigest(big.path, 'sha256'));
  });

  test('cancel stops the read, ends the job with SYS.1017 and changes nothing', async () => {
    const before = (await c.call('GET', `/images/${big.uuid}`)).body.inventories[0].md5Sum;
    const job = await startHash('SHA512');
    while ((await progressOf(job)).opaque.bytesDone === 0) await new Promise((r) => setTimeout(r, 20));
    const cancel = await c.call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(cancel.status, 200, cancel.text);
    const res = await finalOf(job);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1017');
    const p = await progressOf(job);
    assert.ok(p.opaque.bytesDone < BIG, 'the read stopped early');
    assert.equal((await c.call('GET', `/images/${big.uuid}`)).body.inventories[0].md5Sum, before);
    const digests = (await c.call('GET', `/images/${big.uuid}/digests`)).body.inventories;
    assert.ok(!digests.some((d: any) => d.algorithm === 'SHA512'), 'no digest recorded');
    assert.equal(p.opaque.state, 'Canceled');
    // LongJobManagerImpl: a job cancelled before is cancelled again fine, and stays a cancel.
    const again = await c.call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(again.status, 200, again.text);
    assert.equal((await finalOf(job)).body.error.code, 'SYS.1017');
  });

  test('X-API-Timeout ends the job with SYS.1001 and changes nothing', async () => {
    const before = (await c.call('GET', `/images/${big.uuid}`)).body.inventories[0].md5Sum;
    const first = await c.raw(
      'PUT',
      `/images/${big.uuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bs, algorithm: 'SM3' } },
      { 'X-API-Timeout': '1' },
    );
    assert.equal(first.status, 202);
    assert.equal(first.body.apiTimeout, 1000);
    const res = await c.poll(first.body.location);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1001');
    assert.equal((await c.call('GET', `/images/${big.uuid}`)).body.inventories[0].md5Sum, before);
  });

  test('heavy jobs beyond the limit wait as Queued, then run', async () => {
    const first = await startHash('MD5');
    const second = await startHash('SHA1');
    const p2 = await progressOf(second);
    assert.equal(p2.opaque.state, 'Queued');
    assert.equal((await finalOf(first)).status, 200);
    const res = await finalOf(second);
    assert.equal(res.status, 200);
    assert.equal(res.body.inventory.md5Sum, await opensslDigest(big.path, 'sha1'));
  });

  test('finished jobs are answered until the retention period, then "the job has been expired"', async () => {
    const job = await startHash('MD5');
    assert.equal((await finalOf(job)).status, 200);
    assert.equal(await server.app!.services.jobs.purgeFinished(3600), 0, 'kept within the period');
    assert.equal((await finalOf(job)).status, 200);
    assert.ok((await server.app!.services.jobs.purgeFinished(-1)) >= 1);
    const res = await fetch(`${server.url}/zstack/v1/api-jobs/${job}`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), 'the job has been expired');
  });

  test('checksum::<alg>::<hex> system tags verify the import; a mismatch removes the bytes', async () => {
    const sha = await opensslDigest(join(fixtures, 'small.raw'), 'sha256');
    const ok = await c.call('POST', '/images', {
      params: { name: 'checked', url: http.url('/files/small.raw'), backupStorageUuids: [bs] },
      systemTags: [`checksum::sha256::${sha}`],
    });
    assert.equal(ok.status, 200, ok.text);
    const dirs = (await readdir(join(work, 'storage', 'images'))).length;
    const bad = await c.call('POST', '/images', {
      params: { name: 'mismatch', url: http.url('/files/small.raw'), backupStorageUuids: [bs] },
      systemTags: [`checksum::md5::${'0'.repeat(32)}`],
    });
    assert.equal(bad.status, 503);
    assert.equal(bad.body.error.code, 'SYS.1006');
    assert.match(bad.body.error.details, /checksum mismatch.*MD5/);
    assert.equal((await readdir(join(work, 'storage', 'images'))).length, dirs);
    assert.equal((await c.call('GET', '/images?q=name=mismatch&count=true')).body.total, 0);
    const malformed = await c.call('POST', '/images', {
      params: { name: 'm', url: http.url('/files/small.raw'), backupStorageUuids: [bs] },
      systemTags: ['checksum::sha256::xyz'],
    });
    assert.equal(malformed.body.error.code, 'SYS.1007');
  });
});

describe('a process killed mid-job', () => {
  test('the job ends with a clear error after restart, and the half-added image is gone', async () => {
    const work = await tempDir();
    const dataDir = join(work, 'data');
    await mkdir(join(work, 'storage'), { recursive: true });
    const http = await startTestHttpServer({ 'x.raw': randomBytes(32 * 1024 * 1024) });
    let server = await startProcess([], { ZIMAGE_SYNC_WAIT_MS: '0' }, { dataDir, keepDataDir: true });
    try {
      await server.client.login();
      const bs = (await server.client.addLocalStorage(join(work, 'storage'))).uuid;
      // The source sends half the bytes and then stalls: the job is running when the process dies.
      const first = await server.client.raw('POST', '/images', {
        params: { name: 'stalled', url: http.url(`/stall/x.raw?after=${12 * 1024 * 1024}`), backupStorageUuids: [bs] },
      });
      assert.equal(first.status, 202);
      const job = first.body.location.split('/').pop();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const p = (await server.client.raw('GET', `/task-progresses/${job}`)).body.inventories[0];
        if (p.opaque.bytesDone > 0) break;
        assert.ok(Date.now() < deadline, `no progress reported: ${JSON.stringify(p)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const imageDirs = await readdir(join(work, 'storage', 'images'));
      assert.equal(imageDirs.length, 1, 'partial bytes exist before the crash');
      server.proc.kill('SIGKILL');
      await new Promise((r) => server.proc.once('exit', r));
      server = await startProcess([], {}, { dataDir, keepDataDir: true });
      const res = await server.client.poll(`${server.url}/zstack/v1/api-jobs/${job}`);
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'SYS.1006');
      assert.match(res.body.error.details, /stopped before the job finished/);
      await server.client.login();
      assert.equal((await server.client.call('GET', '/images?count=true')).body.total, 0);
      assert.deepEqual(await readdir(join(work, 'storage', 'images')), []);
    } finally {
      await server.stop();
      await http.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
