/**
 * AddImage with upload:// over real HTTP: the upload URL in the inventory, one-PUT and resumed uploads
 * (wrong offset → 409), GetUploadImageJobDetails, sizes against `qemu-img info`, digests against
 * `openssl dgst`, unsafe images and checksum-tag mismatches removed without a trace, expiry, restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFileP, opensslDigest, qemuInfo, startInProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';

const UPLOAD_URL = /^http:\/\/127\.0\.0\.1:\d+\/zimage\/v1\/uploads\/[0-9a-f]{48}$/;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath ?? e.path, e.name));
  return out;
}

const put = (url: string, body: Buffer, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PUT', body: new Uint8Array(body), headers: { 'Content-Type': 'application/octet-stream', ...headers } });

describe('AddImage with upload://', () => {
  let server: TestServer;
  let c: ZClient;
  let work: string;
  let storageDir: string;
  let bs: string;
  let qcow2: Buffer;
  const qcow2Path = () => join(work, 'disk.qcow2');

  before(async () => {
    work = await tempDir();
    storageDir = join(work, 'storage');
    await mkdir(storageDir);
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2Path(), '64M']);
    const payload = join(work, 'payload.raw');
    await writeFile(payload, randomBytes(3 * 1024 * 1024 + 512));
    await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', payload, qcow2Path()]);
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcow2Path(), '64M']);
    qcow2 = await readFile(qcow2Path());
    assert.ok(qcow2.length > 2 * 1024 * 1024, 'larger than the 1 MiB JSON body limit');
    server = await startInProcess();
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(storageDir)).uuid;
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const addUpload = async (
    name: string,
    extra: Record<string, unknown> = {},
    body: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const res = await c.call(
      'POST',
      '/images',
      { params: { name, url: `upload://${name}`, backupStorageUuids: [bs], ...extra }, ...body },
      headers,
    );
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    assert.equal(inv.status, 'Downloading');
    assert.match(inv.url, UPLOAD_URL);
    assert.equal(inv.backupStorageRefs.length, 1);
    assert.equal(inv.backupStorageRefs[0].status, 'Downloading');
    return inv as { uuid: string; url: string };
  };
  const details = async (uuid: string) => {
    const res = await c.raw('GET', `/images/upload-job/details/${uuid}`);
    assert.equal(res.status, 200, res.text);
    return res.body.existingJobDetails as any[];
  };
  const image = async (uuid: string) => (await c.raw('GET', `/images/${uuid}`)).body.inventories[0];

  const checkReady = async (uuid: string) => {
    const inv = await image(uuid);
    assert.equal(inv.status, 'Ready');
    assert.equal(inv.format, 'qcow2');
    const stored = inv.backupStorageRefs[0].installPath as string;
    assert.ok(stored.startsWith(storageDir));
    assert.equal(inv.backupStorageRefs[0].status, 'Ready');
    const info = await qemuInfo(stored, 'qcow2');
    assert.equal(inv.size, info['virtual-size']);
    assert.equal(inv.actualSize, info['actual-size']);
    assert.equal(inv.md5Sum, await opensslDigest(qcow2Path(), 'md5'));
    assert.equal(await opensslDigest(stored, 'md5'), inv.md5Sum);
    const digests = (await c.raw('GET', `/images/${uuid}/digests`)).body.inventories;
    assert.equal(digests.find((d: any) => d.algorithm === 'SHA256').digest, await opensslDigest(qcow2Path(), 'sha256'));
    return inv;
  };

  test('one PUT: the image goes Ready with qemu-img sizes and the MD5 of the bytes', async () => {
    const job = randomBytes(16).toString('hex');
    const inv = await addUpload('one-put', { format: 'qcow2' }, {}, { 'X-Job-UUID': job });
    const before = await details(inv.uuid);
    assert.deepEqual(before, [{ longJobUuid: job, longJobState: 'Waiting', imageUuid: inv.uuid, imageUploadUrl: inv.url, offset: 0 }]);

    // No session: the token is the credential.
    const res = await put(inv.url, qcow2, { 'X-Image-Size': String(qcow2.length) });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('x-offset'), String(qcow2.length));
    const body = await res.json();
    assert.equal(body.state, 'Succeeded');
    assert.equal(body.offset, qcow2.length);

    const ready = await checkReady(inv.uuid);
    assert.equal(ready.url, inv.url);
    const after = await details(inv.uuid);
    assert.equal(after[0].longJobState, 'Succeeded');
    assert.equal(after[0].offset, qcow2.length);

    const again = await put(inv.url, qcow2, { 'X-Offset': '0' });
    assert.equal(again.status, 409);
    assert.match(await again.text(), /already complete/);
  });

  test('three resumed PUTs (a wrong offset answers 409 with the offset) give the same image', async () => {
    const inv = await addUpload('resumed');
    const a = 1024 * 1024 + 7;
    const b = 2 * 1024 * 1024 + 3;
    const parts = [qcow2.subarray(0, a), qcow2.subarray(a, b), qcow2.subarray(b)];

    let res = await put(inv.url, parts[0]!, { 'X-Offset': '0' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).state, 'Running');

    const head = await fetch(inv.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('x-offset'), String(a));
    const got = await (await fetch(inv.url)).json();
    assert.equal(got.offset, a);
    assert.equal(got.state, 'Running');

    res = await put(inv.url, parts[1]!, { 'X-Offset': '0' });
    assert.equal(res.status, 409);
    assert.equal(res.headers.get('x-offset'), String(a));
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.ok((await res.text()).includes(String(a)), 'the body tells the offset');

    res = await put(inv.url, parts[1]!, { 'Content-Range': `bytes ${a}-*/${qcow2.length}` });
    assert.equal(res.status, 200, await res.clone().text());
    const mid = await details(inv.uuid);
    assert.equal(mid[0].longJobState, 'Running');
    assert.equal(mid[0].offset, b);
    assert.equal((await image(inv.uuid)).status, 'Downloading');

    res = await put(inv.url, parts[2]!, { 'X-Offset': String(b), 'X-Upload-Complete': 'true' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).state, 'Succeeded');
    await checkReady(inv.uuid);
    assert.equal((await details(inv.uuid))[0].offset, qcow2.length);
  });

  test('a chunked PUT that breaks off keeps what arrived; a second PUT meanwhile is refused; the client resumes', async () => {
    const inv = await addUpload('broken');
    const first = qcow2.subarray(0, 512 * 1024);
    const abort = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(first); // then nothing more: the connection is cut below
      },
    });
    const pending = fetch(inv.url, { method: 'PUT', body, duplex: 'half', signal: abort.signal } as RequestInit).catch((err) => err);
    let offset = 0;
    for (let i = 0; i < 200 && offset < first.length; i++) {
      await new Promise((r) => setTimeout(r, 10));
      offset = Number((await fetch(inv.url, { method: 'HEAD' })).headers.get('x-offset'));
    }
    assert.equal(offset, first.length, 'the streamed bytes arrived before the end of the body');
    const busy = await put(inv.url, qcow2.subarray(offset), { 'X-Offset': String(offset) });
    assert.equal(busy.status, 409);
    assert.match(await busy.text(), /another request/);
    abort.abort();
    assert.ok((await pending) instanceof Error);
    // Until the server has seen the connection end, the broken request still holds the upload (409).
    let probe = 409;
    for (let i = 0; i < 200 && probe === 409; i++) {
      const res = await put(inv.url, Buffer.alloc(0), { 'X-Offset': String(first.length) });
      probe = res.status;
      await res.text();
      if (probe === 409) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(probe, 200, 'an empty PUT at the right offset is accepted');
    const st = await (await fetch(inv.url)).json();
    assert.equal(st.offset, first.length);
    const res = await put(inv.url, qcow2.subarray(st.offset), { 'X-Offset': String(st.offset), 'X-Upload-Complete': 'true' });
    assert.equal(res.status, 200, await res.clone().text());
    await checkReady(inv.uuid);
  });

  test('an upload into two backup storages writes both copies in the same pass', async () => {
    const dir2 = join(work, 'storage-2');
    await mkdir(dir2);
    const bs2 = (await c.addLocalStorage(dir2, 'second')).uuid;
    const res = await c.call('POST', '/images', { params: { name: 'twice', url: 'upload://', backupStorageUuids: [bs, bs2] } });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    assert.equal((await put(inv.url, qcow2.subarray(0, 1_000_000))).status, 200);
    assert.equal((await put(inv.url, qcow2.subarray(1_000_000), { 'X-Offset': '1000000', 'X-Upload-Complete': 'true' })).status, 200);
    const ready = await image(inv.uuid);
    assert.equal(ready.status, 'Ready');
    assert.equal(ready.backupStorageRefs.length, 2);
    const want = await opensslDigest(qcow2Path(), 'md5');
    assert.equal(ready.md5Sum, want);
    for (const r of ready.backupStorageRefs) {
      assert.equal(r.status, 'Ready');
      assert.equal(await opensslDigest(r.installPath, 'md5'), want);
    }
  });

  test('an unsafe upload (qcow2 with a backing file) fails and leaves nothing', async () => {
    const base = join(work, 'base.qcow2');
    const child = join(work, 'child.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', child]);
    const bytes = await readFile(child);
    const inv = await addUpload('unsafe');
    const res = await put(inv.url, bytes, { 'X-Image-Size': String(bytes.length) });
    assert.equal(res.status, 422);
    const why = await res.text();
    assert.match(why, /unsafe/);
    assert.ok(!why.includes(storageDir), 'no storage path in a data-plane answer');

    assert.deepEqual((await c.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
    assert.deepEqual(
      (await filesUnder(storageDir)).filter((f) => f.includes(inv.uuid)),
      [],
    );
    const d = await details(inv.uuid);
    assert.equal(d[0].longJobState, 'Failed');
    assert.equal(d[0].error.code, 'SYS.1006');
    assert.match(d[0].error.details, /unsafe/);
    assert.equal((await put(inv.url, bytes)).status, 410);
  });

  test('a checksum system tag that does not match the uploaded bytes removes the image', async () => {
    const inv = await addUpload('bad-sum', {}, { systemTags: [`checksum::md5::${'0'.repeat(32)}`] });
    const res = await put(inv.url, qcow2, { 'X-Image-Size': String(qcow2.length) });
    assert.equal(res.status, 422);
    assert.match(await res.text(), /checksum mismatch/);
    assert.deepEqual((await c.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
    assert.deepEqual(
      (await filesUnder(storageDir)).filter((f) => f.includes(inv.uuid)),
      [],
    );
    assert.match((await details(inv.uuid))[0].error.details, /checksum mismatch/);

    const good = await addUpload('good-sum', {}, { systemTags: [`checksum::sha256::${await opensslDigest(qcow2Path(), 'sha256')}`] });
    assert.equal((await put(good.url, qcow2, { 'X-Image-Size': String(qcow2.length) })).status, 200);
    await checkReady(good.uuid);
  });

  test('a declared format that does not match the bytes is refused', async () => {
    const inv = await addUpload('declared-raw', { format: 'raw' });
    const res = await put(inv.url, qcow2, { 'X-Image-Size': String(qcow2.length) });
    assert.equal(res.status, 422);
    assert.match(await res.text(), /declared format\[raw\]/);
    assert.deepEqual((await c.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
  });

  test('bad requests on the data plane: plain text, right status, no state change', async () => {
    const inv = await addUpload('bad-requests');
    const unknown = inv.url.replace(/[0-9a-f]{48}$/, 'f'.repeat(48));
    let res = await put(unknown, Buffer.from('x'));
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal((await fetch(`${inv.url.replace(/[0-9a-f]{48}$/, '')}..%2f..%2fetc`, { method: 'PUT', body: 'x' })).status, 404);
    res = await put(inv.url, Buffer.from('x'), { 'X-Offset': '-1' });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /X-Offset/);
    res = await put(inv.url, Buffer.from('x'), { 'Content-Range': 'bytes=0-' });
    assert.equal(res.status, 400);
    res = await put(inv.url, Buffer.from('x'), { 'X-Upload-Complete': 'yes' });
    assert.equal(res.status, 400);
    res = await put(inv.url, Buffer.from('x'), { 'X-Image-Size': String(2 ** 52) });
    assert.equal(res.status, 413);
    assert.match(await res.text(), /bytes available/);
    const d = await details(inv.uuid);
    assert.equal(d[0].offset, 0);
    assert.equal(d[0].longJobState, 'Waiting');
    assert.equal((await image(inv.uuid)).status, 'Downloading');
    // Unknown image: no upload job.
    assert.deepEqual(await details(randomBytes(16).toString('hex')), []);
  });

  test('an upload idle past the limit is removed with its partial bytes', async () => {
    const inv = await addUpload('abandoned');
    assert.equal((await put(inv.url, qcow2.subarray(0, 100_000))).status, 200);
    assert.equal((await filesUnder(storageDir)).filter((f) => f.includes(inv.uuid)).length, 1, 'the partial file exists');
    const uploads = server.app!.services.uploads;
    const idle = uploads.idleTimeoutMs;
    uploads.idleTimeoutMs = 0;
    try {
      assert.ok((await uploads.sweepExpired()) >= 1);
    } finally {
      uploads.idleTimeoutMs = idle;
    }
    assert.deepEqual((await c.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
    assert.deepEqual(
      (await filesUnder(storageDir)).filter((f) => f.includes(inv.uuid)),
      [],
    );
    const d = await details(inv.uuid);
    assert.equal(d[0].longJobState, 'Failed');
    assert.match(d[0].error.details, /expired/);
    assert.equal((await put(inv.url, qcow2.subarray(100_000), { 'X-Offset': '100000' })).status, 410);
  });

  test('an unfinished upload does not survive a restart: the image and its bytes are removed', async () => {
    const dataDir = await tempDir('zimage-data-');
    const dir = join(work, 'restart-storage');
    await mkdir(dir);
    let s = await startInProcess({ dataDir });
    await s.client.login();
    const bsUuid = (await s.client.addLocalStorage(dir)).uuid;
    const res = await s.client.call('POST', '/images', { params: { name: 'cut', url: 'upload://', backupStorageUuids: [bsUuid] } });
    assert.equal(res.status, 200, res.text);
    const inv = res.body.inventory;
    assert.equal((await put(inv.url, qcow2.subarray(0, 200_000))).status, 200);
    await s.stop();
    s = await startInProcess({ dataDir });
    try {
      await s.client.login();
      assert.deepEqual((await s.client.raw('GET', `/images/${inv.uuid}`)).body.inventories, []);
      assert.deepEqual(await filesUnder(dir), []);
      const url = inv.url.replace(/^http:\/\/[^/]+/, s.url);
      assert.equal((await fetch(url, { method: 'HEAD' })).status, 404);
    } finally {
      await s.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
