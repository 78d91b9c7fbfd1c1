/**
 * Uploads on any node: two (then three) `zimage serve` processes on one real PostgreSQL with an SFTP storage
 * on a real sshd. An upload begun on node A continues on node B and back (running digests rebuilt once per
 * change of node, from the stored bytes); the image goes Ready with the MD5 of `openssl dgst` and the sizes of
 * `qemu-img info`. Two PUTs for one upload on two nodes: one 409. A node killed mid-PUT holds the upload until
 * its lease expires; then another node resumes from the synced offset. A local-directory storage stays bound
 * to its node. Upload expiry works from a node that never saw the upload.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { killMidPut, on, put, REBUILT } from './helpers/upload-nodes.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, SSHD_HOSTS, startSshd, userDir, type TestSshd } from './helpers/sshd.js';
import { execFileP, opensslDigest, qemuInfo, startProcess, tempDir, waitFor, type ZClient } from './helpers/zimage.js';

type Node = Awaited<ReturnType<typeof startProcess>>;

describe('uploads on any node (PostgreSQL, SFTP)', () => {
  let pgServer: TestPostgres | undefined;
  let sshd: TestSshd | undefined;
  let work: string;
  let root: string;
  let a: Node;
  let b: Node;
  let c: ZClient;
  let sftp: string;
  let qcow2: Buffer;
  let qcow2Path: string;
  let db: pg.Client;
  const secret = randomBytes(32).toString('base64');
  const serve = (id: string, env: Record<string, string> = {}) =>
    startProcess(['--db', pgServer!.url], { ZIMAGE_NODE_ID: id, ZIMAGE_SECRET_KEY: secret, ...env });

  before(async () => {
    try {
      pgServer = await startPostgres();
    } catch (err) {
      // Every test below skips with this reason.
      console.log(`PostgreSQL is not available: ${(err as Error).message}`);
      return;
    }
    sshd = await startSshd();
    work = await tempDir('zimage-upload-any-');
    await fsp.chmod(work, 0o755);
    root = await userDir(path.join(work, 'sftp-root'));
    qcow2Path = path.join(work, 'disk.qcow2');
    const payload = path.join(work, 'payload.raw');
    await fsp.writeFile(payload, randomBytes(3 * 1024 * 1024 + 4321));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, qcow2Path]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcow2Path, '64M']);
    qcow2 = await fsp.readFile(qcow2Path);
    a = await serve('node-a');
    b = await serve('node-b');
    c = a.client;
    await c.login();
    await b.client.login();
    const res = await c.call('POST', '/backup-storage/sftp', {
      params: {
        name: 'sftp',
        hostname: SSHD_HOSTS[1],
        sshPort: sshd.port,
        username: PASSWORD_USER,
        password: PASSWORD_USER_PASSWORD,
        url: root,
      },
    });
    assert.equal(res.status, 200, res.text);
    sftp = res.body.inventory.uuid;
    db = new pg.Client({ connectionString: pgServer.url });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await a?.stop();
    await b?.stop();
    await sshd?.close();
    await pgServer?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const needPg = (t: { skip(reason: string): void }): boolean => {
    if (pgServer) return true;
    t.skip('PostgreSQL is not available');
    return false;
  };

  const addUpload = async (client: ZClient, name: string, storage: string) => {
    const res = await client.call('POST', '/images', { params: { name, url: `upload://${name}`, backupStorageUuids: [storage] } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.status, 'Downloading');
    return res.body.inventory as { uuid: string; url: string };
  };

  const filesOf = async (dir: string, uuid: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true }))
      if (e.isFile() && e.name.includes(uuid)) out.push(path.join(e.parentPath, e.name));
    return out;
  };

  const checkReady = async (client: ZClient, uuid: string) => {
    const inv = (await client.raw('GET', `/images/${uuid}`)).body.inventories[0];
    assert.equal(inv.status, 'Ready');
    assert.equal(inv.format, 'qcow2');
    const stored = inv.backupStorageRefs[0].installPath as string;
    assert.ok(stored.startsWith(root), stored);
    const info = await qemuInfo(stored, 'qcow2');
    assert.equal(inv.size, info['virtual-size']);
    assert.equal(inv.actualSize, info['actual-size']);
    assert.equal(inv.md5Sum, await opensslDigest(qcow2Path, 'md5'));
    assert.equal(await opensslDigest(stored, 'md5'), inv.md5Sum);
    const digests = (await client.raw('GET', `/images/${uuid}/digests`)).body.inventories;
    assert.equal(digests.find((d: any) => d.algorithm === 'SHA256').digest, await opensslDigest(qcow2Path, 'sha256'));
    assert.deepEqual(
      (await filesOf(root, uuid)).map((f) => path.basename(f)),
      [`${uuid}.template`],
      'no partial bytes left',
    );
  };

  test('begun on A, continued on B and back on A: Ready with the MD5 and sizes of the bytes', async (t) => {
    if (!needPg(t)) return;
    const inv = await addUpload(c, 'a-b-a', sftp);
    const total = String(qcow2.length);
    const cuts = [0, 700_000, 1_500_000, 2_600_000, qcow2.length];
    const nodes = [a, b, b, a];
    const rebuiltBefore = [a.output().match(REBUILT)?.length ?? 0, b.output().match(REBUILT)?.length ?? 0];
    for (const [n, node] of nodes.entries()) {
      const res = await put(on(node, inv.url), qcow2.subarray(cuts[n], cuts[n + 1]), {
        'X-Offset': String(cuts[n]),
        'X-Image-Size': total,
      });
      assert.equal(res.status, 200, await res.clone().text());
      const st = await res.json();
      assert.equal(st.offset, cuts[n + 1]);
      if (n < nodes.length - 1) {
        // Every node sees the same state: HEAD and GetUploadImageJobDetails through the other node.
        const other = node === a ? b : a;
        const head = await fetch(on(other, inv.url), { method: 'HEAD' });
        assert.equal(head.headers.get('x-offset'), String(cuts[n + 1]));
        assert.equal(head.headers.get('x-upload-state'), 'Running');
        const details = (await other.client.raw('GET', `/images/upload-job/details/${inv.uuid}`)).body.existingJobDetails;
        assert.equal(details[0].offset, cuts[n + 1]);
        assert.equal(details[0].longJobState, 'Running');
      }
    }
    await checkReady(b.client, inv.uuid);
    // B rebuilt the digests once (its first PUT), A once (when it took the upload back); never for its own bytes.
    assert.equal((a.output().match(REBUILT)?.length ?? 0) - rebuiltBefore[0]!, 1, a.output());
    assert.equal((b.output().match(REBUILT)?.length ?? 0) - rebuiltBefore[1]!, 1, b.output());
    const { rows } = await db.query('select state, owner_node, received, lease_holder from upload_state where image_uuid = $1', [inv.uuid]);
    assert.deepEqual(
      rows.map((r) => ({ ...r, received: Number(r.received) })),
      [{ state: 'Succeeded', owner_node: 'node-a', received: qcow2.length, lease_holder: null }],
    );
    const again = await put(on(b, inv.url), Buffer.alloc(0), { 'X-Offset': total });
    assert.equal(again.status, 409);
    assert.match(await again.text(), /already complete/);
  });

  test('two PUTs for one upload on A and B at once: one answers 409, the upload ends right', async (t) => {
    if (!needPg(t)) return;
    const inv = await addUpload(b.client, 'racing', sftp);
    const first = qcow2.subarray(0, 600_000);
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        ctl = controller;
        controller.enqueue(new Uint8Array(first));
      },
    });
    const slow = fetch(on(a, inv.url), { method: 'PUT', body, duplex: 'half' } as RequestInit);
    await waitFor('the first bytes to reach node A', async () => {
      const head = await fetch(on(a, inv.url), { method: 'HEAD' });
      return head.headers.get('x-offset') === String(first.length);
    });
    const busy = await put(on(b, inv.url), qcow2.subarray(first.length), { 'X-Offset': String(first.length) });
    assert.equal(busy.status, 409);
    assert.match(await busy.text(), /another request is uploading/);
    ctl.close();
    const done = await slow;
    assert.equal(done.status, 200, await done.clone().text());
    assert.equal((await done.json()).offset, first.length);

    // Both at the same instant from the same offset: exactly one writes.
    const rest = qcow2.subarray(first.length);
    const headers = { 'X-Offset': String(first.length), 'X-Image-Size': String(qcow2.length) };
    const answers = await Promise.all([put(on(a, inv.url), rest, headers), put(on(b, inv.url), rest, headers)]);
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409], statuses.join(','));
    const loser = answers.find((r) => r.status === 409)!;
    assert.match(await loser.text(), /another request is uploading|already complete|offset mismatch/);
    await checkReady(a.client, inv.uuid);
  });

  test('a node killed mid-PUT: its lease holds the upload until it expires, then another node resumes from the synced offset', async (t) => {
    if (!needPg(t)) return;
    const d = await serve('node-d');
    try {
      await d.client.login();
      const inv = await addUpload(d.client, 'killed', sftp);
      const part1 = 1_000_000;
      assert.equal((await put(on(d, inv.url), qcow2.subarray(0, part1))).status, 200);
      await killMidPut(d, inv.url, qcow2.subarray(part1, part1 + 700_000), part1);
      // The dead node's lease still holds the upload; the record says what was synced: part 1.
      const early = await put(on(b, inv.url), qcow2.subarray(part1), { 'X-Offset': String(part1), 'X-Upload-Complete': 'true' });
      assert.equal(early.status, 409);
      assert.match(await early.text(), /another request is uploading/);
      assert.equal((await fetch(on(b, inv.url), { method: 'HEAD' })).headers.get('x-offset'), String(part1));
      let status = 409;
      const began = Date.now();
      let acceptedAt = 0;
      await waitFor(
        "the dead node's lease to expire",
        async () => {
          const attempt = Date.now();
          const res = await put(on(b, inv.url), qcow2.subarray(part1), { 'X-Offset': String(part1), 'X-Upload-Complete': 'true' });
          status = res.status;
          const text = await res.text();
          if (status === 409) assert.match(text, /another request is uploading/);
          else assert.equal(status, 200, text);
          if (status === 409) await new Promise((r) => setTimeout(r, 1000));
          else acceptedAt = attempt;
          return status === 200;
        },
        40_000,
      );
      // The PUT that was accepted began within the 20 s lease and the 1 s between tries (its own length is the
      // digest rebuild and the transfer, which a busy machine may stretch).
      assert.ok(acceptedAt - began < 22_000, `taken over ${acceptedAt - began} ms after the first refusal; the lease is 20 s`);
      await checkReady(b.client, inv.uuid);
    } finally {
      await d.stop();
    }
  });

  test('a local-directory storage stays bound to its node: another node without the directory answers 421, the upload goes on', async (t) => {
    if (!needPg(t)) return;
    const dir = path.join(work, 'local-a');
    await fsp.mkdir(dir);
    const res = await c.call('POST', '/backup-storage/local', { params: { name: 'local-a', url: dir } });
    assert.equal(res.status, 200, res.text);
    const inv = await addUpload(c, 'bound', res.body.inventory.uuid);
    assert.equal((await put(on(a, inv.url), qcow2.subarray(0, 500_000))).status, 200);
    // Both nodes run on this machine: hide the directory, as on another machine.
    const hidden = `${dir}.hidden`;
    await fsp.rename(dir, hidden);
    let refused: Response;
    try {
      refused = await put(on(b, inv.url), qcow2.subarray(500_000), { 'X-Offset': '500000', 'X-Upload-Complete': 'true' });
    } finally {
      await fsp.rename(hidden, dir);
    }
    assert.equal(refused.status, 421);
    assert.equal(refused.headers.get('x-offset'), '500000');
    assert.match(await refused.text(), /can only continue on zimage node \[node-a\].*local directory that is not on this node/);
    const head = await fetch(on(b, inv.url), { method: 'HEAD' });
    assert.equal(head.headers.get('x-upload-state'), 'Running');
    assert.equal(head.headers.get('x-offset'), '500000');
    const ok = await put(on(a, inv.url), qcow2.subarray(500_000), { 'X-Offset': '500000', 'X-Upload-Complete': 'true' });
    assert.equal(ok.status, 200, await ok.clone().text());
    const ready = (await c.raw('GET', `/images/${inv.uuid}`)).body.inventories[0];
    assert.equal(ready.status, 'Ready');
    assert.equal(ready.md5Sum, await opensslDigest(qcow2Path, 'md5'));
  });

  test('an idle upload expires through a node that never saw it: image, partial bytes and row state', async (t) => {
    if (!needPg(t)) return;
    const sweeper = await serve('node-c', { ZIMAGE_UPLOAD_IDLE_TIMEOUT_SEC: '2' });
    try {
      const inv = await addUpload(c, 'idle', sftp);
      assert.equal((await put(on(a, inv.url), qcow2.subarray(0, 300_000))).status, 200);
      assert.equal((await filesOf(root, inv.uuid)).length, 1, 'the partial file exists');
      const details = async () => (await b.client.raw('GET', `/images/upload-job/details/${inv.uuid}`)).body.existingJobDetails;
      await waitFor('node C to expire the upload', async () => (await details())[0].longJobState === 'Failed', 15_000);
      assert.deepEqual((await c.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
      const [expired] = await details();
      assert.match(expired.error.details, /expired: no bytes for \d+ s \(limit 2 s\)/);
      assert.deepEqual(await filesOf(root, inv.uuid), []);
      const gone = await put(on(b, inv.url), qcow2.subarray(300_000), { 'X-Offset': '300000' });
      assert.equal(gone.status, 410);
    } finally {
      await sweeper.stop();
    }
  });
});
