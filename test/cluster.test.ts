/**
 * Three `zimage serve` processes on one real PostgreSQL, with an SFTP storage (real sshd) and a Ceph
 * storage (real test cluster): a node SIGKILLed with its whole process group (as a machine death) in the
 * middle of CalculateImageHash and of AddImage; another node takes the job over under the same id and the
 * client, polling through yet another node, sees it finish. Also: concurrent hashes spread over the nodes,
 * the cluster-wide queue, and periodic work moving when its node dies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startCephCluster, type CephCluster } from './helpers/ceph.js';
import { spawnCli } from './helpers/cli.js';
import { TestCluster, type ClusterNode } from './helpers/cluster.js';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, SSHD_HOSTS, startSshd, userDir, type TestSshd } from './helpers/sshd.js';
import { opensslDigest, qemuInfo, tempDir, waitFor } from './helpers/zimage.js';

const MiB = 1024 * 1024;
const LEASE_SEC = 3;

describe('three zimage nodes on one PostgreSQL', { timeout: 600_000 }, () => {
  let pgServer: TestPostgres;
  let cluster: TestCluster;
  let sshd: TestSshd;
  let ceph: CephCluster;
  let http: TestHttpServer;
  let work: string;
  let sftpRoot: string;
  const secret = randomBytes(32).toString('base64');
  let sftpUuid: string;
  let cephUuid: string;
  const files: Record<string, string> = {};

  const nodes = () => cluster.nodes;
  const alive = () => cluster.alive();
  const client = (n: ClusterNode) => cluster.client(n);
  const jobRow = (uuid: string) => cluster.jobRow(uuid);
  const startJob = (n: ClusterNode, method: string, path: string, body: unknown) => cluster.startJob(n, method, path, body);
  /** Polls the job through `n`; on a timeout, the failure shows what every node logged about the job. */
  const pollVia = (n: ClusterNode, job: string, ms: number) =>
    client(n)
      .poll(`${n.url}/zstack/v1/api-jobs/${job}`, ms)
      .catch(async (err: Error) => {
        const logs = nodes().map((x) =>
          x
            .output()
            .split('\n')
            .filter((l) => l.includes(job) || /take|lost|heartbeat/.test(l))
            .join('\n'),
        );
        throw new Error(`${err.message}\nrow: ${JSON.stringify(await jobRow(job))}\n${logs.join('\n---\n')}`);
      });
  const waitBytes = async (job: string) =>
    waitFor(
      'the job to be mid-way',
      async () => {
        const row = await jobRow(job);
        return row.state === 'Running' && Number(row.bytes_done) > 0 && Number(row.bytes_done) < Number(row.bytes_total);
      },
      60_000,
    );

  before(async () => {
    work = await tempDir('zimage-cluster-');
    await chmod(work, 0o755); // the SFTP user reaches its directory inside
    [pgServer, sshd, ceph] = await Promise.all([startPostgres(), startSshd(), startCephCluster({ name: 'cluster', monPort: 63300 })]);
    sftpRoot = await userDir(join(work, 'sftp'));
    // The hash image is large enough that reading it takes a moment; the add image arrives slowly.
    const big = Buffer.alloc(256 * MiB);
    randomBytes(MiB).copy(big, 0);
    randomBytes(MiB).copy(big, 200 * MiB);
    const small = randomBytes(8 * MiB);
    const tiny = randomBytes(MiB);
    await mkdir(join(work, 'src'));
    for (const [name, bytes] of Object.entries({ 'big.raw': big, 'small.raw': small, 'tiny.raw': tiny })) {
      files[name] = join(work, 'src', name);
      await writeFile(files[name], bytes);
    }
    http = await startTestHttpServer({ 'big.raw': { path: files['big.raw']! }, 'small.raw': small, 'tiny.raw': tiny });
    cluster = await TestCluster.start(await pgServer.createDatabase('cluster'), 3, {
      ZIMAGE_SECRET_KEY: secret,
      ZIMAGE_NODE_LEASE_SECONDS: String(LEASE_SEC),
      ZIMAGE_SYNC_WAIT_MS: '0',
      ZIMAGE_MAX_HEAVY_JOBS: '2',
      ZIMAGE_PING_INTERVAL_SEC: '1',
    });
    const sftp = await client(nodes()[0]!).call('POST', '/backup-storage/sftp', {
      params: {
        name: 'sftp',
        hostname: SSHD_HOSTS[0],
        sshPort: sshd.port,
        username: PASSWORD_USER,
        password: PASSWORD_USER_PASSWORD,
        url: sftpRoot,
      },
    });
    assert.equal(sftp.status, 200, sftp.text);
    sftpUuid = sftp.body.inventory.uuid;
    const cephBs = await client(nodes()[1]!).call('POST', '/backup-storage/ceph', {
      params: { name: 'ceph', monUrls: [ceph.monUrl], poolName: 'rbd' },
    });
    assert.equal(cephBs.status, 200, cephBs.text);
    cephUuid = cephBs.body.inventory.uuid;
  });

  after(async () => {
    // For a failure's post-mortem: every node's log (ZIMAGE_CLUSTER_TEST_LOGS=<dir>).
    const logs = process.env.ZIMAGE_CLUSTER_TEST_LOGS;
    if (logs && cluster) for (const [i, n] of cluster.nodes.entries()) await writeFile(join(logs, `node-${i}.log`), n.output());
    await cluster?.stop();
    await http?.close();
    await Promise.allSettled([pgServer?.stop(), sshd?.close(), ceph?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  // Every test starts with three live nodes, whatever an earlier one killed: each test runs alone too.
  beforeEach(async () => {
    while (alive().length < 3) await cluster.startNode();
  });

  test('every live node is listed Alive with a unique id, one runs the periodic work; the CLI lists the same', async () => {
    const live = alive();
    const res = await client(live[2]!).call('GET', '/zimage/nodes');
    assert.equal(res.status, 200, res.text);
    const listedAlive = res.body.inventories.filter((n: any) => n.state === 'Alive');
    assert.deepEqual(listedAlive.map((n: any) => n.address).sort(), live.map((n) => n.url).sort(), JSON.stringify(res.body.inventories));
    assert.equal(new Set(res.body.inventories.map((n: any) => n.id)).size, res.body.inventories.length, 'node ids are unique by default');
    assert.equal(res.body.inventories.filter((n: any) => n.periodicWork).length, 1, 'one node runs the periodic work');
    // The same through the client CLI.
    const env = { XDG_CONFIG_HOME: join(work, 'cli'), ZIMAGE_URL: '', ZIMAGE_PASSWORD: 'password' };
    const login = await spawnCli(['login', '--url', live[1]!.url], env).done;
    assert.equal(login.code, 0, login.stderr);
    const list = await spawnCli(['node', 'list', '--json'], env).done;
    assert.equal(list.code, 0, list.stderr);
    const listed = JSON.parse(list.stdout) as any[];
    assert.deepEqual(listed.map((n) => n.id).sort(), res.body.inventories.map((n: any) => n.id).sort());
    assert.equal(listed.find((n) => n.self)?.address, live[1]!.url);
    const table = await spawnCli(['node', 'list'], env).done;
    assert.match(table.stdout, /Alive/);
  });

  test('a node killed mid-CalculateImageHash: another node redoes it under the same job id', async () => {
    const add = await client(alive()[0]!).call(
      'POST',
      '/images',
      {
        params: { name: 'big', url: http.url('/files/big.raw'), format: 'raw', backupStorageUuids: [cephUuid] },
      },
      {},
      300_000,
    );
    assert.equal(add.status, 200, add.text);
    const hashImage = add.body.inventory.uuid;
    const job = await startJob(alive()[0]!, 'PUT', `/images/${hashImage}/actions`, {
      // SM3 is the slowest digest: the read lasts seconds, so the kill lands mid-way even on an idle machine.
      calculateImageHash: { backupStorageUuid: cephUuid, algorithm: 'SM3' },
    });
    await waitBytes(job);
    const { victim, id: victimId, watcher } = await cluster.runnerOf(job);
    const t0 = Date.now();
    await cluster.kill(victim);
    assert.notEqual((await jobRow(job)).state, 'Succeeded', 'the job was still running when its node was killed');
    assert.deepEqual(await readdir(victim.tmp), [], 'the killed node left nothing in its temporary directory (rbd export socket)');
    const res = await pollVia(watcher, job, (LEASE_SEC + 30) * 1000);
    assert.equal(res.status, 200, res.text);
    assert.ok(Date.now() - t0 < (LEASE_SEC + 30) * 1000);
    assert.equal(res.body.inventory.md5Sum, await opensslDigest(files['big.raw']!, 'sm3'), 'the digest is in md5Sum, as ZStack puts it');
    const row = await jobRow(job);
    assert.equal(row.state, 'Succeeded');
    assert.equal(row.previous_node, victimId, 'the job was taken from the killed node');
    assert.notEqual(row.owner_node, victimId, 'another node finished it');
  });

  test('a node killed mid-AddImage (slow URL): the same job ends 200 through another node, no partial bytes left', async () => {
    const job = await startJob(alive()[0]!, 'POST', '/images', {
      params: { name: 'slow', url: http.url(`/slow/small.raw?bps=${2 * MiB}`), format: 'raw', backupStorageUuids: [sftpUuid, cephUuid] },
    });
    await waitBytes(job);
    const { victim, id: victimId, watcher } = await cluster.runnerOf(job);
    const image = (await jobRow(job)).resource_uuid as string;
    const t0 = Date.now();
    await cluster.kill(victim);
    const res = await pollVia(watcher, job, (LEASE_SEC + 30) * 1000);
    assert.equal(res.status, 200, res.text);
    assert.ok(Date.now() - t0 < (LEASE_SEC + 30) * 1000);
    const inv = res.body.inventory;
    assert.equal(inv.uuid, image, 'the same image uuid');
    assert.equal(inv.status, 'Ready');
    assert.equal(inv.md5Sum, await opensslDigest(files['small.raw']!, 'md5'));
    const expected = await qemuInfo(files['small.raw']!, 'raw');
    assert.equal(inv.size, expected['virtual-size']);
    // No partial bytes: one image directory on SFTP, only final images on Ceph.
    assert.deepEqual(
      (await readdir(join(sftpRoot, 'images'))).filter((d) => d.startsWith(image)),
      [image],
    );
    // Ceph keeps the dead client's watch on its partial image for osd_client_watch_timeout (30 s): the
    // taker removes it once the watch expires.
    const rbdOf = async () => (await ceph.rbd(['ls', 'rbd'])).split('\n').filter((n) => n.startsWith(image));
    await waitFor("the dead node's partial Ceph image to be removed", async () => (await rbdOf()).length === 1, 60_000);
    assert.deepEqual(await rbdOf(), [image]);
    const row = await jobRow(job);
    assert.equal(row.previous_node, victimId, 'the job was taken from the killed node');
    assert.notEqual(row.owner_node, victimId, 'another node finished it');
    const stuck = await cluster.query(`SELECT uuid FROM api_job WHERE state IN ('Queued', 'Running')`);
    assert.deepEqual(stuck.rows, [], 'no job stays Running');
  });

  test('a killed node is listed Dead once its lease has passed; a new node joins Alive', async () => {
    const [victim, watcher] = [alive()[0]!, alive()[1]!];
    const listed = async () => (await client(watcher).call('GET', '/zimage/nodes')).body.inventories as any[];
    const victimId = (await listed()).find((n) => n.address === victim.url)?.id;
    assert.ok(victimId, `node ${victim.url} is listed`);
    await cluster.kill(victim);
    const lastSeen = Number((await cluster.query('SELECT last_seen FROM node WHERE id = $1', [victimId])).rows[0]!.last_seen);
    await waitFor(
      'the killed node to be listed Dead',
      async () => (await listed()).find((n) => n.id === victimId)?.state === 'Dead',
      (LEASE_SEC + 5) * 1000,
    );
    assert.ok(Date.now() - lastSeen > LEASE_SEC * 1000, 'not Dead before its lease has passed since its last heartbeat');
    const fresh = await cluster.startNode();
    const now = await listed();
    assert.equal(now.find((n) => n.address === fresh.url)?.state, 'Alive', JSON.stringify(now));
    assert.equal(now.find((n) => n.id === victimId)?.state, 'Dead');
  });

  test('30 concurrent hashes through all three nodes: every node runs at least 5', async () => {
    const add = await client(alive()[0]!).call('POST', '/images', {
      params: { name: 'tiny', url: http.url('/files/tiny.raw'), format: 'raw', backupStorageUuids: [sftpUuid] },
    });
    assert.equal(add.status, 200, add.text);
    const live = alive();
    const jobs = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        startJob(live[i % 3]!, 'PUT', `/images/${add.body.inventory.uuid}/actions`, {
          calculateImageHash: { backupStorageUuid: sftpUuid, algorithm: 'SHA256' },
        }),
      ),
    );
    const expected = await opensslDigest(files['tiny.raw']!, 'sha256');
    const results = await Promise.all(jobs.map((j, i) => pollVia(live[(i + 1) % 3]!, j, 120_000)));
    for (const r of results) assert.equal(r.body?.inventory?.md5Sum, expected, r.text);
    const byNode = await cluster.query(`SELECT owner_node, count(*)::int AS n FROM api_job WHERE uuid = ANY($1) GROUP BY owner_node`, [
      jobs,
    ]);
    assert.equal(byNode.rows.length, 3, JSON.stringify(byNode.rows));
    for (const r of byNode.rows) assert.ok(r.n >= 5, JSON.stringify(byNode.rows));
  });

  test('heavy jobs queue cluster-wide: AddImages sent to one node run on several', async () => {
    const live = alive();
    const jobs: string[] = [];
    for (let i = 0; i < 6; i++) {
      jobs.push(
        await startJob(live[0]!, 'POST', '/images', {
          params: { name: `q${i}`, url: http.url(`/slow/tiny.raw?bps=${MiB}`), format: 'raw', backupStorageUuids: [sftpUuid] },
        }),
      );
    }
    for (const j of jobs) assert.equal((await pollVia(live[0]!, j, 60_000)).status, 200);
    const owners = await cluster.query(`SELECT DISTINCT owner_node FROM api_job WHERE uuid = ANY($1)`, [jobs]);
    assert.ok(owners.rows.length >= 2, `6 adds on a node with 2 heavy slots ran on ${owners.rows.length} node(s)`);
  });

  test('cancel through another node than the one running the job', async () => {
    const live = alive();
    const job = await startJob(live[0]!, 'POST', '/images', {
      params: { name: 'to-cancel', url: http.url(`/slow/small.raw?bps=${MiB}`), format: 'raw', backupStorageUuids: [sftpUuid] },
    });
    await waitBytes(job);
    const runner = (await jobRow(job)).owner_node;
    const other = live.find((n) => n.url !== live[0]!.url)!;
    const cancel = await client(other).call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(cancel.status, 200, cancel.text);
    const res = await pollVia(live[2]!, job, 30_000);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1017');
    const row = await jobRow(job);
    assert.equal(row.state, 'Canceled');
    assert.equal(row.owner_node, runner, 'the node running it ended it');
  });

  test('periodic work moves when its node dies', async () => {
    const list = async () => (await client(alive()[0]!).call('GET', '/zimage/nodes')).body.inventories as any[];
    const holderId = (await list()).find((n) => n.periodicWork)?.id;
    assert.ok(holderId, 'a node runs the periodic work');
    const address = (await list()).find((n) => n.periodicWork)?.address;
    const holder = alive().find((n) => n.url === address);
    assert.ok(holder, `the process of node ${holderId}`);
    await cluster.kill(holder);
    await waitFor(
      'another node to run the periodic work',
      async () => {
        const now = await list();
        const next = now.find((n) => n.periodicWork);
        return next !== undefined && next.id !== holderId && next.state === 'Alive';
      },
      (LEASE_SEC + 10) * 1000,
    );
  });
});
