/**
 * One live process per data directory (and per node id on PostgreSQL), and an unusable --data-dir is
 * refused at once with the reason. Real `zimage serve` processes, a real import in flight, real kill -9.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startPostgres } from './helpers/postgres.js';
import { execFileP, ROOT, startProcess, tempDir, waitFor } from './helpers/zimage.js';

/** Runs `zimage serve` expecting it to exit by itself; returns its exit code, output and how long it took. */
async function serveExpectingExit(
  dataDir: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; output: string; ms: number }> {
  const started = performance.now();
  const proc = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), 'serve', '--port', '0', '--data-dir', dataDir, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, output, ms: performance.now() - started };
}

describe('one process per data directory', () => {
  let work: string;
  let http: TestHttpServer;

  before(async () => {
    work = await tempDir('zimage-lock-');
    await mkdir(join(work, 'storage'));
    http = await startTestHttpServer({ 'x.raw': randomBytes(16 * 1024 * 1024) });
  });
  after(async () => {
    await http?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a second serve exits at once naming the first PID and leaves its running import alone; after kill -9 a new one starts', async () => {
    const dataDir = join(work, 'data');
    const first = await startProcess([], { ZIMAGE_SYNC_WAIT_MS: '0' }, { dataDir, keepDataDir: true });
    try {
      await first.client.login();
      const bs = (await first.client.addLocalStorage(join(work, 'storage'))).uuid;
      const add = await first.client.raw('POST', '/images', {
        params: { name: 'stalled', url: http.url(`/stall/x.raw?after=${4 * 1024 * 1024}`), backupStorageUuids: [bs] },
      });
      assert.equal(add.status, 202, add.text);
      const job = add.body.location.split('/').pop();
      await waitFor(
        'import progress',
        async () => (await first.client.raw('GET', `/task-progresses/${job}`)).body.inventories[0].opaque.bytesDone > 0,
        20_000,
      );
      const partial = await readdir(join(work, 'storage', 'images'));
      assert.equal(partial.length, 1);

      const second = await serveExpectingExit(dataDir);
      assert.notEqual(second.code, 0);
      assert.match(second.output, new RegExp(`data directory ${dataDir} is in use by process ${first.proc.pid}`));
      assert.ok(second.ms < 5000, `the second process took ${Math.round(second.ms)} ms to give up`);

      // The first process's import is still running, its partial bytes still there.
      const poll = await fetch(add.body.location);
      assert.equal(poll.status, 202, 'the import job is still running');
      const progress = (await first.client.raw('GET', `/task-progresses/${job}`)).body.inventories[0];
      assert.ok(progress.opaque.bytesDone > 0, JSON.stringify(progress));
      assert.deepEqual(await readdir(join(work, 'storage', 'images')), partial);
      const image = (await first.client.raw('GET', '/images?q=name=stalled')).body.inventories[0];
      assert.equal(image.status, 'Downloading');

      first.proc.kill('SIGKILL');
      await new Promise((r) => first.proc.once('exit', r));
      const next = await startProcess([], {}, { dataDir, keepDataDir: true });
      try {
        // Now the import really is orphaned: recovery fails it.
        const res = await next.client.poll(`${next.url}/zstack/v1/api-jobs/${job}`);
        assert.equal(res.status, 503);
        assert.match(res.body.error.details, /stopped before the job finished/);
      } finally {
        await next.stop();
      }
    } finally {
      await first.stop();
    }
  });

  test('PostgreSQL: a second live process with the same node id refuses to start; another node id starts; kill -9 frees the id', async () => {
    const pg = await startPostgres();
    const a = await startProcess(['--db', pg.url], { ZIMAGE_NODE_ID: 'node-a' });
    try {
      const twin = await serveExpectingExit(join(work, 'twin'), ['--db', pg.url], { ZIMAGE_NODE_ID: 'node-a' });
      assert.notEqual(twin.code, 0);
      assert.match(twin.output, new RegExp(`node id node-a is in use on this PostgreSQL database by zimage node node-a pid ${a.proc.pid}`));
      const b = await startProcess(['--db', pg.url], { ZIMAGE_NODE_ID: 'node-b' });
      await b.client.login();
      await b.stop();

      a.proc.kill('SIGKILL');
      await new Promise((r) => a.proc.once('exit', r));
      // PostgreSQL ends the dead connection's session (and its advisory lock) once it sees the socket close.
      let again: Awaited<ReturnType<typeof startProcess>> | undefined;
      await waitFor(
        'node-a to be free again',
        async () => {
          again = await startProcess(['--db', pg.url], { ZIMAGE_NODE_ID: 'node-a' }).catch(() => undefined);
          return again !== undefined;
        },
        15_000,
      );
      await again!.client.login();
      await again!.stop();
    } finally {
      await a.stop();
      await pg.stop();
    }
  });
});

/** How long starting Node itself takes on this machine now (a loaded CI box can take most of a second). */
async function nodeStartMs(): Promise<number> {
  const started = performance.now();
  await execFileP(process.execPath, ['-e', '0']);
  return performance.now() - started;
}

describe('an unusable --data-dir exits non-zero within 1 s with the reason', () => {
  let work: string;
  let roMount: string | undefined;
  /** 1 s of zimage's own time, on top of Node's start-up as measured next to each run. */
  const within1s = async (ms: number) => assert.ok(ms < 1000 + (await nodeStartMs()), `took ${Math.round(ms)} ms`);
  before(async () => {
    work = await tempDir('zimage-baddir-');
    await writeFile(join(work, 'a-file'), 'x');
  });
  after(async () => {
    if (roMount) await execFileP('umount', [roMount]).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  const cases: Array<[string, () => string, RegExp]> = [
    ['under /proc', () => '/proc/zimage-nope', /is on the kernel's proc file system/],
    ['under /sys', () => '/sys/zimage-nope/data', /is on the kernel's sysfs file system/],
    ['a regular file', () => join(work, 'a-file'), /is not a directory/],
    ['below a regular file', () => join(work, 'a-file', 'data'), /is not a directory/],
  ];
  for (const [what, dir, reason] of cases) {
    test(what, async () => {
      const d = dir();
      const res = await serveExpectingExit(d);
      assert.notEqual(res.code, 0, res.output);
      assert.match(res.output, reason);
      assert.match(res.output, new RegExp(`data directory ${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      await within1s(res.ms);
      assert.ok(!existsSync(join(d, 'zimage.db')));
    });
  }

  test('on a read-only file system (not writable; not creatable below it)', async (t) => {
    if (userInfo().uid !== 0) return t.skip('mounting a read-only tmpfs needs root');
    roMount = join(work, 'ro');
    await mkdir(roMount);
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', roMount]);
    const notWritable = await serveExpectingExit(roMount);
    assert.notEqual(notWritable.code, 0);
    assert.match(notWritable.output, /data directory .*\/ro is not writable \(it is on a read-only file system\)/);
    await within1s(notWritable.ms);
    const notCreatable = await serveExpectingExit(join(roMount, 'sub'));
    assert.notEqual(notCreatable.code, 0);
    assert.match(notCreatable.output, /cannot create .*\/ro\/sub \(EROFS\)/);
    await within1s(notCreatable.ms);
  });
});
