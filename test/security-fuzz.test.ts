/**
 * Property-based HTTP fuzz of every API in the registry, against a real `zimage serve` process on loopback:
 * random bodies, query strings and headers, well-typed-ish and hostile. Never a 500 (ZStack's 503 is an
 * answer, with an ErrorCode body), never an internal error inside a job, never a crash; the server is
 * healthy afterwards and its RSS stays under 300 MB.
 *
 * The fuzzed server may reach only loopback: imports are held to 127.0.0.0/8 and ::1, file imports to a
 * temporary root, and the generators (helpers/fuzz-requests.ts) aim every host-like field at loopback.
 *
 * ZIMAGE_FUZZ_CASES (default 2000; `npm run fuzz` runs 20000) and ZIMAGE_FUZZ_SEED choose the run.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ALL_APIS } from '../src/api/server.js';
import { type FuzzRequest, type FuzzTargets, requestFor } from './helpers/fuzz-requests.js';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { execFileP, startProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';

const CASES = Number(process.env.ZIMAGE_FUZZ_CASES ?? 2000);
const SEED = Number(process.env.ZIMAGE_FUZZ_SEED ?? 20261130);
/** Requests sent at once; each property run is one batch. */
const BATCH = 8;
const RSS_LIMIT = 300 * 1024 * 1024;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const describeRequest = (r: FuzzRequest) =>
  JSON.stringify({ ...r, body: r.body && r.body.length > 600 ? `${r.body.slice(0, 600)}…(${r.body.length})` : r.body });

describe('HTTP fuzz of every API', () => {
  let work: string;
  let files: string;
  let storage: string;
  let http: TestHttpServer;
  let server: TestServer & { proc: import('node:child_process').ChildProcess; output: () => string };
  let c: ZClient;
  let bsUuid = '';
  let imageUuid = '';
  const jobIds: string[] = [];
  let maxRss = 0;

  /** A fresh session, a connected and enabled local storage, a Ready image: whatever random calls undid. */
  async function ensureFixtures(): Promise<void> {
    const valid = c.session ? await c.raw('GET', `/accounts/sessions/${c.session}/valid`) : undefined;
    if (valid?.body?.valid !== true) await c.login();
    let bs = bsUuid ? (await c.raw('GET', `/backup-storage/${bsUuid}`)).body?.inventories?.[0] : undefined;
    if (!bs) {
      bs = await c.addLocalStorage(storage, 'fuzz-bs');
      bsUuid = bs.uuid;
    }
    if (bs.state !== 'Enabled') {
      const r = await c.call('PUT', `/backup-storage/${bsUuid}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } });
      assert.equal(r.status, 200, r.text);
    }
    if (bs.status !== 'Connected') await c.call('PUT', `/backup-storage/${bsUuid}/actions`, { reconnectBackupStorage: {} });
    const img = imageUuid ? (await c.raw('GET', `/images/${imageUuid}`)).body?.inventories?.[0] : undefined;
    if (
      !img ||
      img.status !== 'Ready' ||
      img.state !== 'Enabled' ||
      !img.backupStorageRefs?.some((r: any) => r.backupStorageUuid === bsUuid)
    ) {
      const r = await c.call('POST', '/images', {
        params: { name: 'fuzz-img', url: `file://${join(files, 'ok.qcow2')}`, format: 'qcow2', backupStorageUuids: [bsUuid] },
      });
      assert.equal(r.status, 200, r.text);
      imageUuid = r.body.inventory.uuid;
    }
  }

  before(async () => {
    work = await tempDir('zimage-fuzz-');
    files = join(work, 'files');
    storage = join(work, 'storage');
    await mkdir(files);
    await mkdir(storage);
    await mkdir(join(work, 'storage2'));
    await writeFile(join(files, 'ok.raw'), randomBytes(64 * 1024));
    await writeFile(join(files, 'empty.raw'), '');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', join(files, 'ok.qcow2'), '16M']);
    http = await startTestHttpServer({ 'ok.raw': { path: join(files, 'ok.raw') }, 'ok.qcow2': { path: join(files, 'ok.qcow2') } });
    server = await startProcess([], {
      ZIMAGE_IMPORT_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
      ZIMAGE_IMPORT_FILE_ROOTS: files,
      ZIMAGE_SYNC_WAIT_MS: '0',
      ZIMAGE_JOB_TIMEOUT_MS: '5000',
      ZIMAGE_MAX_HEAVY_JOBS: '2',
      ZIMAGE_PING_INTERVAL_SEC: '3600',
    });
    c = server.client;
    await ensureFixtures();
  });

  after(async () => {
    await server?.stop();
    await http?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test(
    `${CASES} random requests (seed ${SEED}): no 500, no internal error, no crash, RSS < 300 MB`,
    { timeout: Math.max(120_000, CASES * 60) },
    async () => {
      const targets: FuzzTargets = {
        ids: () => [bsUuid, imageUuid, c.session ?? 'none', ...jobIds.slice(-4)],
        importUrls: [
          http.url('/files/ok.raw'),
          http.url('/files/ok.qcow2'),
          http.url('/files/missing.raw'),
          `http://user:secret@127.0.0.1:${http.port}/files/ok.raw`,
          'http://127.0.0.1:1/x.raw',
          'http://[::1]:1/x.raw',
          'http://10.1.2.3/x.raw', // refused by the policy before any packet
          'http://169.254.169.254/latest/meta-data/',
          `file://${join(files, 'ok.raw')}`,
          `file://${join(files, 'empty.raw')}`,
          `file://${files}/../storage`,
          'file:///etc/shadow',
          join(files, 'ok.raw'),
          'upload://fuzz.qcow2',
          'ftp://127.0.0.1/x',
          'sftp://127.0.0.1/x',
        ],
        storageDirs: [storage, join(work, 'storage2'), join(work, 'nope')],
        hookUrls: [http.url('/hook'), 'http://127.0.0.1:1/hook'],
        sessionHeader: () => `OAuth ${c.session ?? ''}`,
      };
      // One arbitrary per API, built once (building them per request costs more than sending it).
      const request = fc.oneof(...ALL_APIS.map((def) => requestFor(def, targets)));
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      let runs = 0;
      const send = async (r: FuzzRequest): Promise<void> => {
        let res: Response;
        const t0 = Date.now();
        try {
          res = await fetch(`${server.url}/zstack/v1${r.path}`, {
            method: r.method,
            headers: r.headers,
            body: r.body,
            signal: AbortSignal.timeout(30_000),
          });
        } catch (err) {
          if (err instanceof TypeError && !/fetch failed/.test(err.message)) return; // fetch itself refused the request
          failures.push(
            `no answer (${(err as Error).message}; ${(err as { cause?: Error }).cause?.message ?? ''}) to ${describeRequest(r)}`,
          );
          return;
        }
        const text = await res.text();
        if (process.env.ZIMAGE_FUZZ_SLOW && Date.now() - t0 > 500)
          console.log(`# slow ${Date.now() - t0} ms: ${res.status} ${describeRequest(r).slice(0, 300)}`);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) {
          let code: unknown;
          try {
            code = JSON.parse(text)?.error?.code;
          } catch {
            code = undefined;
          }
          if (res.status !== 503 || typeof code !== 'string' || code === 'SYS.1000')
            failures.push(`${res.status} ${text.slice(0, 300)} for ${describeRequest(r)}`);
        }
        if (res.status === 202) {
          const id = /api-jobs\/([0-9a-f]{32})/.exec(text)?.[1];
          if (id) jobIds.push(id);
          if (jobIds.length > 64) jobIds.splice(0, 32);
        }
      };
      const run = await fc.check(
        fc.asyncProperty(fc.array(request, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
          if (runs++ % 10 === 0) await ensureFixtures();
          await Promise.all(batch.map(send));
          maxRss = Math.max(maxRss, rssOf(server.proc.pid!));
          if (server.proc.exitCode !== null) failures.push(`the server died:\n${server.output().slice(-3000)}`);
          return failures.length === 0;
        }),
        // No shrinking: the server's state moved on; the failing request itself is what is reported.
        { seed: SEED, numRuns: Math.ceil(CASES / BATCH), endOnFailure: true },
      );
      if (run.failed) {
        assert.fail(
          `${failures.slice(0, 5).join('\n\n') || String(run.errorInstance)}\n(seed ${SEED}, run ${run.numRuns}; replay with ZIMAGE_FUZZ_SEED=${SEED})`,
        );
      }

      // Healthy after: a login and a QueryImage work; nothing inside a job failed with an internal error.
      const fresh = new ZClient(server.url);
      await fresh.login();
      const q = await fresh.raw('GET', '/images?limit=5');
      assert.equal(q.status, 200, q.text);
      assert.ok(Array.isArray(q.body.inventories));
      const internal = server
        .output()
        .split('\n')
        .filter((l) => /unexpected error|uncaught|internal error/i.test(l));
      assert.deepEqual(internal.slice(0, 5), [], 'internal errors in the server log');
      assert.ok(maxRss > 0 && maxRss < RSS_LIMIT, `server RSS peaked at ${Math.round(maxRss / 1048576)} MB`);
      console.log(
        `# fuzz: ${runs * BATCH} requests, seed ${SEED}, peak RSS ${Math.round(maxRss / 1048576)} MB, statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
    },
  );
});
