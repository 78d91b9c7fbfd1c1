/**
 * Uploads into Ceph on any node: two `zimage serve` processes on one real PostgreSQL with a Ceph storage on a
 * real one-node cluster (its own name and monitor port). An upload begun on node A continues on node B and back
 * (the partial RBD image suspended by one node is reopened and written on by the other); the image goes Ready
 * with the MD5 of `openssl dgst`, and the RBD image holds exactly the uploaded bytes (`rbd export - | openssl`).
 * A node killed mid-PUT: another node takes the upload over from the recorded offset once the lease expires.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCephCluster, type CephCluster } from './helpers/ceph.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { killMidPut, on, put, REBUILT } from './helpers/upload-nodes.js';
import { execFileP, opensslDigest, startProcess, tempDir, waitFor, type ZClient } from './helpers/zimage.js';

type Node = Awaited<ReturnType<typeof startProcess>>;

describe('uploads on any node (PostgreSQL, Ceph)', () => {
  let pgServer: TestPostgres | undefined;
  let cluster: CephCluster;
  let work: string;
  let a: Node;
  let b: Node;
  let c: ZClient;
  let ceph: string;
  let qcow2: Buffer;
  let qcow2Path: string;
  const secret = randomBytes(32).toString('base64');
  const serve = (id: string) => startProcess(['--db', pgServer!.url], { ZIMAGE_NODE_ID: id, ZIMAGE_SECRET_KEY: secret });

  before(async () => {
    try {
      pgServer = await startPostgres();
    } catch (err) {
      // Every test below skips with this reason.
      console.log(`PostgreSQL is not available: ${(err as Error).message}`);
      return;
    }
    cluster = await startCephCluster({ name: 'upload-any', monPort: 7330 });
    work = await tempDir('zimage-upload-any-ceph-');
    qcow2Path = path.join(work, 'disk.qcow2');
    const payload = path.join(work, 'payload.raw');
    await fsp.writeFile(payload, randomBytes(5 * 1024 * 1024 + 4321));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, qcow2Path]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcow2Path, '64M']);
    qcow2 = await fsp.readFile(qcow2Path);
    a = await serve('node-a');
    b = await serve('node-b');
    c = a.client;
    await c.login();
    await b.client.login();
    const res = await c.call('POST', '/backup-storage/ceph', { params: { name: 'ceph', monUrls: [cluster.monUrl], poolName: 'rbd' } });
    assert.equal(res.status, 200, res.text);
    ceph = res.body.inventory.uuid;
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await cluster?.stop();
    await pgServer?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const needPg = (t: { skip(reason: string): void }): boolean => {
    if (pgServer) return true;
    t.skip('PostgreSQL is not available');
    return false;
  };

  const rbdNames = async (uuid: string): Promise<string[]> =>
    (JSON.parse(await cluster.rbd(['ls', '-p', 'rbd', '--format', 'json'])) as string[]).filter((n) => n.startsWith(uuid));

  /** `rbd export rbd/<name> - | openssl dgst -md5` (pipefail: a failed export fails). */
  const rbdMd5 = async (name: string): Promise<string> => {
    const { stdout } = await execFileP(
      'bash',
      ['-o', 'pipefail', '-c', 'rbd --conf "$1" export --no-progress "$2" - | openssl dgst -md5 -r', '_', cluster.conf, `rbd/${name}`],
      { maxBuffer: 1 << 20 },
    );
    return stdout.trim().split(/\s+/)[0]!;
  };

  test('begun on A, continued on B and back on A: Ready with the MD5 of the bytes, which RBD holds exactly', async (t) => {
    if (!needPg(t)) return;
    const res = await c.call('POST', '/images', { params: { name: 'ceph-a-b-a', url: 'upload://ceph-a-b-a', backupStorageUuids: [ceph] } });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory as { uuid: string; url: string; status: string };
    assert.equal(inv.status, 'Downloading');
    const total = String(qcow2.length);
    // Cuts inside and across the helper's 4 MiB write pieces.
    const cuts = [0, 700_000, 1_500_000, 4_300_000, qcow2.length];
    const nodes = [a, b, b, a];
    const rebuiltBefore = [a.output().match(REBUILT)?.length ?? 0, b.output().match(REBUILT)?.length ?? 0];
    for (const [n, node] of nodes.entries()) {
      const r = await put(on(node, inv.url), qcow2.subarray(cuts[n], cuts[n + 1]), { 'X-Offset': String(cuts[n]), 'X-Image-Size': total });
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal((await r.json()).offset, cuts[n + 1]);
      if (n < nodes.length - 1) {
        const other = node === a ? b : a;
        const head = await fetch(on(other, inv.url), { method: 'HEAD' });
        assert.equal(head.headers.get('x-offset'), String(cuts[n + 1]));
        assert.equal(head.headers.get('x-upload-state'), 'Running');
        const partial = await rbdNames(inv.uuid);
        assert.equal(partial.length, 1, 'one partial RBD image between PUTs');
        assert.match(partial[0]!, /\.zimage-part-[0-9a-f]{12}$/);
      }
    }
    const ready = (await b.client.raw('GET', `/images/${inv.uuid}`)).body.inventories[0];
    assert.equal(ready.status, 'Ready');
    assert.equal(ready.format, 'qcow2');
    assert.equal(ready.backupStorageRefs[0].installPath, `ceph://rbd/${inv.uuid}`);
    const md5 = await opensslDigest(qcow2Path, 'md5');
    assert.equal(ready.md5Sum, md5);
    assert.equal(await rbdMd5(inv.uuid), md5, 'the bytes in RBD are the uploaded ones');
    assert.deepEqual(await rbdNames(inv.uuid), [inv.uuid], 'no partial RBD image left');
    // B rebuilt the digests once (its first PUT), A once (when it took the upload back).
    assert.equal((a.output().match(REBUILT)?.length ?? 0) - rebuiltBefore[0]!, 1, a.output());
    assert.equal((b.output().match(REBUILT)?.length ?? 0) - rebuiltBefore[1]!, 1, b.output());
  });

  test('a node killed mid-PUT: after its lease expires another node cuts the partial RBD image to the recorded offset and finishes', async (t) => {
    if (!needPg(t)) return;
    const d = await serve('node-d');
    try {
      await d.client.login();
      const res = await d.client.call('POST', '/images', {
        params: { name: 'ceph-killed', url: 'upload://ceph-killed', backupStorageUuids: [ceph] },
      });
      assert.equal(res.status, 200, res.text);
      const inv = res.body.inventory as { uuid: string; url: string };
      const part1 = 1_000_000;
      assert.equal((await put(on(d, inv.url), qcow2.subarray(0, part1))).status, 200);
      // The second PUT writes through D's helper (a resumed import); D dies with these bytes in flight.
      await killMidPut(d, inv.url, qcow2.subarray(part1, part1 + 700_000), part1);
      // The record says what was synced: part 1. B resumes there once D's lease has expired.
      await waitFor(
        "the dead node's lease to expire",
        async () => {
          const r = await put(on(b, inv.url), qcow2.subarray(part1), { 'X-Offset': String(part1), 'X-Upload-Complete': 'true' });
          const text = await r.text();
          if (r.status === 409) {
            assert.match(text, /another request is uploading/);
            await new Promise((ok) => setTimeout(ok, 1000));
            return false;
          }
          assert.equal(r.status, 200, text);
          return true;
        },
        40_000,
      );
      const ready = (await b.client.raw('GET', `/images/${inv.uuid}`)).body.inventories[0];
      assert.equal(ready.status, 'Ready');
      const md5 = await opensslDigest(qcow2Path, 'md5');
      assert.equal(ready.md5Sum, md5);
      assert.equal(await rbdMd5(inv.uuid), md5);
      assert.deepEqual(await rbdNames(inv.uuid), [inv.uuid], 'no partial RBD image left');
    } finally {
      await d.stop();
    }
  });
});
