/**
 * What a take-over promises beyond test/cluster.test.ts, on three `zimage serve` processes sharing one real
 * PostgreSQL (an SFTP storage on a real sshd; no Ceph needed): a job that cannot be redone from its request
 * fails with an error naming the dead node, and a web hook is called once, by the node that ends the job,
 * with the final result. A node is SIGKILLed with its whole process group, as a machine death would.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { chmod, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { TestCluster, type ClusterNode } from './helpers/cluster.js';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, startSshd, userDir, type TestSshd } from './helpers/sshd.js';
import { opensslDigest, tempDir, waitFor } from './helpers/zimage.js';

const MiB = 1024 * 1024;
const LEASE_SEC = 3;
interface HookCall {
  at: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

describe('cluster take-over: jobs that cannot be redone, web hooks', { timeout: 300_000 }, () => {
  let pgServer: TestPostgres;
  let cluster: TestCluster;
  let sshd: TestSshd;
  let files: TestHttpServer;
  let hookServer: http.Server;
  let hookUrl: string;
  const hooks: HookCall[] = [];
  let work: string;
  let source: string;
  const secret = randomBytes(32).toString('base64');
  let sftpUuid: string;

  const alive = () => cluster.alive();
  const client = (n: ClusterNode) => cluster.client(n);
  const jobRow = (uuid: string) => cluster.jobRow(uuid);
  const hooksOf = (job: string) => hooks.filter((h) => h.headers['x-job-uuid'] === job);
  /** Starts an async call on `n` with a web hook; answers its job uuid. */
  const startJob = (n: ClusterNode, method: string, path: string, body: unknown) =>
    cluster.startJob(n, method, path, body, { 'X-Web-Hook': hookUrl });

  before(async () => {
    work = await tempDir('zimage-cluster-takeover-');
    await chmod(work, 0o755); // the SFTP user reaches its directory inside
    [pgServer, sshd] = await Promise.all([startPostgres(), startSshd()]);
    source = join(work, 'small.raw');
    await writeFile(source, randomBytes(8 * MiB));
    files = await startTestHttpServer({ 'small.raw': { path: source } });
    hookServer = http.createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        hooks.push({ at: Date.now(), headers: req.headers, body: JSON.parse(text) });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hookServer.address() as net.AddressInfo).port}/hook`;
    const env = { ZIMAGE_SECRET_KEY: secret, ZIMAGE_NODE_LEASE_SECONDS: String(LEASE_SEC), ZIMAGE_SYNC_WAIT_MS: '0' };
    cluster = await TestCluster.start(await pgServer.createDatabase('takeover'), 3, env);
    const sftp = await client(cluster.nodes[0]!).call('POST', '/backup-storage/sftp', {
      params: {
        name: 'sftp',
        hostname: '127.0.0.1',
        sshPort: sshd.port,
        username: PASSWORD_USER,
        password: PASSWORD_USER_PASSWORD,
        url: await userDir(join(work, 'sftp')),
      },
    });
    assert.equal(sftp.status, 200, sftp.text);
    sftpUuid = sftp.body.inventory.uuid;
  });

  after(async () => {
    await cluster?.stop();
    await files?.close();
    if (hookServer) await new Promise<void>((r) => (hookServer.closeAllConnections(), hookServer.close(() => r())));
    await Promise.allSettled([pgServer?.stop(), sshd?.close()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test(
    'a job that cannot be redone fails naming the dead node, polled through another node; its hook is called once',
    { timeout: 90_000 },
    async () => {
      // An "SSH server" that accepts and never answers: AddSftpBackupStorage waits in its SSH handshake.
      const sockets: net.Socket[] = [];
      const silent = net.createServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.9', r));
      try {
        const job = await startJob(alive()[0]!, 'POST', '/backup-storage/sftp', {
          params: {
            name: 'stuck',
            hostname: '127.0.0.9',
            sshPort: (silent.address() as net.AddressInfo).port,
            username: 'nobody',
            password: 'secret',
            url: '/srv/stuck',
          },
        });
        await waitFor('the add to be connecting', async () => sockets.length > 0 && (await jobRow(job)).state === 'Running', 10_000);
        assert.equal((await jobRow(job)).request, null, 'AddSftpBackupStorage is not kept for a redo');
        const { id, victim, watcher } = await cluster.runnerOf(job);
        const t0 = Date.now();
        await cluster.kill(victim);
        const res = await client(watcher).poll(`${watcher.url}/zstack/v1/api-jobs/${job}`, (LEASE_SEC + 30) * 1000);
        assert.ok(Date.now() - t0 < (LEASE_SEC + 30) * 1000);
        assert.equal(res.status, 503, res.text);
        assert.equal(res.body.error.code, 'SYS.1006');
        assert.ok(res.body.error.details.includes(`node ${id}`), `the error names the dead node ${id}: ${res.body.error.details}`);
        assert.match(res.body.error.details, /AddSftpBackupStorage cannot be redone/);
        const row = await jobRow(job);
        assert.equal(row.state, 'Failed');
        assert.equal(row.previous_node, id);
        const left = await cluster.query(`SELECT uuid FROM backup_storage WHERE name = 'stuck'`);
        assert.deepEqual(left.rows, [], 'no storage was added');
        // The node that ended the job calls its hook, once, with the failure.
        await waitFor('the web hook', () => Promise.resolve(hooksOf(job).length > 0), 10_000);
        await sleep(3000);
        const calls = hooksOf(job);
        assert.equal(calls.length, 1, 'called exactly once');
        assert.equal(calls[0]!.headers['x-job-success'], 'false');
        assert.ok(calls[0]!.at > t0, 'called after the node died: by the node that ended the job');
        assert.deepEqual(calls[0]!.body, { error: res.body.error });
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => silent.close(() => r()));
      }
    },
  );

  test(
    'a redone job with a web hook: the hook is called once, by the finishing node, with the final result',
    { timeout: 90_000 },
    async () => {
      await cluster.startNode();
      const job = await startJob(alive()[0]!, 'POST', '/images', {
        params: { name: 'hooked', url: files.url(`/slow/small.raw?bps=${2 * MiB}`), format: 'raw', backupStorageUuids: [sftpUuid] },
      });
      await waitFor(
        'the add to be mid-way',
        async () => {
          const row = await jobRow(job);
          return row.state === 'Running' && Number(row.bytes_done) > 0 && Number(row.bytes_done) < Number(row.bytes_total);
        },
        30_000,
      );
      const { id, victim, watcher } = await cluster.runnerOf(job);
      const t0 = Date.now();
      await cluster.kill(victim);
      const res = await client(watcher).poll(`${watcher.url}/zstack/v1/api-jobs/${job}`, (LEASE_SEC + 30) * 1000);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.inventory.md5Sum, await opensslDigest(source, 'md5'));
      const row = await jobRow(job);
      assert.equal(row.state, 'Succeeded');
      assert.equal(row.previous_node, id);
      assert.notEqual(row.owner_node, id, 'another node finished it');
      await waitFor('the web hook', () => Promise.resolve(hooksOf(job).length > 0), 10_000);
      await sleep(3000);
      const calls = hooksOf(job);
      assert.equal(calls.length, 1, 'called exactly once');
      assert.equal(calls[0]!.headers['x-job-success'], 'true');
      assert.ok(calls[0]!.at > t0, 'called after the node died: by the node that finished the job');
      assert.deepEqual(calls[0]!.body, res.body, 'the hook carries the final result');
    },
  );
});
