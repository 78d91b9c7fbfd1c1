/**
 * Findings of the attack on our own server, fixed: slow clients (header / body / idle timeouts, connection
 * caps), tags given with create calls, misleading system tags, and bad access-key signatures in the metrics.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_UUID } from '../src/services/accounts.js';
import { startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

/** A raw socket to the server; `closed` resolves with the ms from connect to close and what the server sent. */
function rawSocket(url: string): { socket: Socket; closed: Promise<{ ms: number; data: string }>; ready: Promise<void> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString()));
  socket.on('error', () => {}); // a reset is one way of being closed
  const started = Date.now();
  const ready = new Promise<void>((r) => socket.once('connect', () => r()));
  const closed = new Promise<{ ms: number; data: string }>((r) => socket.once('close', () => r({ ms: Date.now() - started, data })));
  return { socket, closed, ready };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('slow clients', () => {
  let server: TestServer;
  let work: string;
  let bs: string;

  before(async () => {
    work = await tempDir();
    await mkdir(join(work, 'storage'));
    server = await startInProcess({ headersTimeoutSec: 1, requestTimeoutSec: 2, idleTimeoutSec: 3 });
    await server.client.login();
    bs = (await server.client.addLocalStorage(join(work, 'storage'))).uuid;
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('headers that never end: 408 and the socket is closed after the headers timeout', async () => {
    const c = rawSocket(server.url);
    await c.ready;
    c.socket.write('GET /zstack/v1/zones HTTP/1.1\r\nHost: x\r\n');
    const { ms, data } = await c.closed;
    assert.match(data, /^HTTP\/1\.1 408/);
    assert.ok(ms >= 900 && ms < 2500, `closed after ${ms} ms`);
  });

  test('a control-plane body that trickles: closed at the request timeout, though bytes keep coming', async () => {
    const c = rawSocket(server.url);
    await c.ready;
    c.socket.write('PUT /zstack/v1/accounts/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    let open = true;
    void c.closed.then(() => (open = false));
    while (open) {
      c.socket.write(' ');
      await sleep(300);
    }
    const { ms } = await c.closed;
    assert.ok(ms >= 1900 && ms < 3500, `closed after ${ms} ms`);
  });

  const addUpload = async (name: string): Promise<{ uuid: string; url: string }> => {
    const res = await server.client.call('POST', '/images', {
      params: { name, url: `upload://${name}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };

  test('an upload that sends its headers then stalls: closed at the idle timeout, not the request timeout', async () => {
    const inv = await addUpload('stalled');
    const c = rawSocket(inv.url);
    await c.ready;
    const { pathname } = new URL(inv.url);
    c.socket.write(`PUT ${pathname} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n`);
    const { ms } = await c.closed;
    assert.ok(ms >= 2900 && ms < 5000, `closed after ${ms} ms`);
  });

  test('a slow but moving upload, longer than both timeouts, succeeds', async () => {
    const inv = await addUpload('slow');
    const bytes = randomBytes(64 * 1024);
    const chunks = 12; // one every 500 ms: 6 s in all, past the 2 s request and the 3 s idle timeouts
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(inv.url, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': bytes.length, 'x-image-size': bytes.length },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      void (async () => {
        const step = Math.ceil(bytes.length / chunks);
        for (let i = 0; i < bytes.length; i += step) {
          req.write(bytes.subarray(i, i + step));
          await sleep(500);
        }
        req.end();
      })();
    });
    assert.equal(answer.status, 200, answer.body);
    assert.equal(JSON.parse(answer.body).state, 'Succeeded');
    const image = (await server.client.raw('GET', `/images/${inv.uuid}`)).body.inventories[0];
    assert.equal(image.status, 'Ready');
    assert.deepEqual(await readFile(image.backupStorageRefs[0].installPath), bytes);
  });
});

describe('connection caps', () => {
  let server: TestServer;
  before(async () => {
    server = await startInProcess({ maxConnectionsPerClient: 3 });
  });
  after(async () => {
    await server?.stop();
  });

  test('connections beyond the per-client cap are closed at once; a freed slot serves again', async () => {
    const held = [rawSocket(server.url), rawSocket(server.url), rawSocket(server.url)];
    await Promise.all(held.map((c) => c.ready));
    await sleep(100);
    const extra = rawSocket(server.url);
    const { ms } = await extra.closed;
    assert.ok(ms < 1000, `the extra connection was closed after ${ms} ms`);
    let heldClosed = false;
    void Promise.race(held.map((c) => c.closed)).then(() => (heldClosed = true));
    await sleep(200);
    assert.equal(heldClosed, false, 'the connections within the cap stay open');

    held[0]!.socket.destroy();
    await held[0]!.closed;
    await sleep(100);
    const again = rawSocket(server.url);
    await again.ready;
    again.socket.write('GET /zstack/v1/zones HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const { data } = await again.closed;
    assert.match(data, /^HTTP\/1\.1 400 [^]*missing header 'Authorization'/);
    for (const c of held) c.socket.destroy();
  });
});

const MAX_TAG = 2048;

describe('tags given with create calls and CreateSystemTag', () => {
  let server: TestServer;
  let work: string;
  let bs: string;
  let image: string;
  const fixture = () => join(work, 'fixtures', 'a.raw');

  before(async () => {
    work = await tempDir();
    await mkdir(join(work, 'fixtures'));
    await mkdir(join(work, 'storage'));
    await writeFile(fixture(), randomBytes(64 * 1024));
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    await server.client.login();
    bs = (await server.client.addLocalStorage(join(work, 'storage'))).uuid;
    image = await bootedImage('booted');
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const addImage = (name: string, tags: { systemTags?: string[]; userTags?: string[] }) =>
    server.client.call('POST', '/images', { params: { name, url: `file://${fixture()}`, backupStorageUuids: [bs] }, ...tags });
  /** An image with bootMode::UEFI and qemuga system tags and one user tag. */
  const bootedImage = async (name: string): Promise<string> => {
    const res = await addImage(name, { systemTags: ['bootMode::UEFI', 'qemuga'], userTags: ['team-a'] });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory.uuid as string;
  };
  const count = async (path: string) => (await server.client.call('GET', `${path}&count=true`)).body.total as number;
  const refused = (res: { status: number; body: any; text: string }, details: string) => {
    assert.equal(res.status, 503, res.text);
    assert.equal(res.body.error.code, 'SYS.1007', res.text);
    assert.equal(res.body.error.details, details);
  };

  test('AddImage: an unknown system tag such as __proto__ is refused as CreateSystemTag refuses it; nothing stored', async () => {
    refused(await addImage('proto', { systemTags: ['__proto__'] }), 'no system tag matches[__proto__] for resourceType[ImageVO]');
    const direct = await server.client.call('POST', '/system-tags', {
      params: { resourceType: 'ImageVO', resourceUuid: image, tag: '__proto__' },
    });
    refused(direct, 'no system tag matches[__proto__] for resourceType[ImageVO]');
    assert.equal(await count('/images?q=name=proto'), 0);
  });

  test('AddImage: a user tag over 2048 characters or with a control character is refused; nothing stored', async () => {
    const huge = 'x'.repeat(MAX_TAG + 1);
    refused(
      await addImage('huge', { userTags: [huge] }),
      `field[userTags] of message[org.zstack.header.image.APIAddImageMsg] exceeds max length of string. expected was <= ${MAX_TAG}, actual was ${MAX_TAG + 1}`,
    );
    refused(
      await addImage('ctl', { userTags: ['a\nb'] }),
      'field[userTags] of message[org.zstack.header.image.APIAddImageMsg] contains the control character U+000A at position 1; remove it',
    );
    assert.equal(await count('/images?q=name?=huge,ctl'), 0);
    assert.equal(await count(`/user-tags?q=tag=${huge}`), 0);
    // CreateUserTag answers the same limit.
    const direct = await server.client.call('POST', '/user-tags', { params: { resourceType: 'ImageVO', resourceUuid: image, tag: huge } });
    refused(
      direct,
      `field[tag] of message[org.zstack.header.tag.APICreateUserTagMsg] exceeds max length of string. expected was <= ${MAX_TAG}, actual was ${MAX_TAG + 1}`,
    );
    assert.equal(await count(`/user-tags?q=resourceUuid=${image}`), 1);
  });

  test('AddBackupStorage and CreateZone: unknown or huge tags are refused before the resource exists', async () => {
    await mkdir(join(work, 'storage2'));
    const addBs = (tags: Record<string, string[]>) =>
      server.client.call('POST', '/backup-storage/local', { params: { name: 'bs2', url: join(work, 'storage2') }, ...tags });
    refused(await addBs({ systemTags: ['__proto__'] }), 'no system tag matches[__proto__] for resourceType[BackupStorageVO]');
    refused(
      await addBs({ userTags: ['y'.repeat(100_000)] }),
      `field[userTags] of message[org.zstack.zimage.APIAddLocalBackupStorageMsg] exceeds max length of string. expected was <= ${MAX_TAG}, actual was 100000`,
    );
    assert.equal(await count('/backup-storage?q=name=bs2'), 0);
    const zone = await server.client.call('POST', '/zones', { params: { name: 'z1' }, systemTags: ['constructor'] });
    refused(zone, 'no system tag matches[constructor] for resourceType[ZoneVO]');
    assert.equal(await count('/zones?q=name=z1'), 0);
    // Tags ZStack defines still go through.
    const ok = await addBs({ systemTags: ['extraips::10.0.0.2'], userTags: ['rack-1'] });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(await count(`/system-tags?q=resourceUuid=${ok.body.inventory.uuid}&q=tag=extraips::10.0.0.2`), 1);
  });

  test('an action on an image cannot add a second bootMode or a checksum tag', async () => {
    const update = (systemTags: string[]) =>
      server.client.call('PUT', `/images/${image}/actions`, { updateImage: { description: 'x' }, systemTags });
    refused(await update(['bootMode::Legacy']), 'only one bootMode system tag is allowed, but 2 got');
    refused(
      await update([`checksum::md5::${'0'.repeat(32)}`]),
      `no system tag matches[checksum::md5::${'0'.repeat(32)}] for resourceType[ImageVO]`,
    );
    assert.equal((await update(['bootMode::UEFI'])).status, 200, 'the value it has already is fine');
    assert.equal(await count(`/system-tags?q=resourceUuid=${image}&q=tag~=bootMode::%25`), 1);
  });

  test('CreateSystemTag refuses checksum:: tags (only AddImage verifies them) and a second bootMode', async () => {
    const create = (tag: string) =>
      server.client.call('POST', '/system-tags', { params: { resourceType: 'ImageVO', resourceUuid: image, tag } });
    const checksum = `checksum::sha256::${'a'.repeat(64)}`;
    refused(await create(checksum), `no system tag matches[${checksum}] for resourceType[ImageVO]`);
    refused(await create('bootMode::Legacy'), 'only one bootMode system tag is allowed, but 2 got');
    const same = await create('bootMode::UEFI');
    assert.equal(same.status, 200, same.text);
    assert.equal(same.body.inventory, undefined, 'a tag the image carries already is not created again');
    assert.equal(await count(`/system-tags?q=resourceUuid=${image}&q=tag~=checksum::%25`), 0);
    assert.equal(await count(`/system-tags?q=resourceUuid=${image}&q=tag~=bootMode::%25`), 1);
  });

  test('UpdateSystemTag cannot turn another tag into a second bootMode; the bootMode tag itself may change', async () => {
    // An image of its own: the bootMode change below would break the other tests' image (bootMode::UEFI).
    const own = await bootedImage('booted-for-update');
    const tags = (await server.client.call('GET', `/system-tags?q=resourceUuid=${own}`)).body.inventories as Array<{
      uuid: string;
      tag: string;
    }>;
    const qemuga = tags.find((t) => t.tag === 'qemuga')!;
    const boot = tags.find((t) => t.tag.startsWith('bootMode::'))!;
    const update = (uuid: string, tag: string) => server.client.call('PUT', `/system-tags/${uuid}/actions`, { updateSystemTag: { tag } });
    refused(await update(qemuga.uuid, 'bootMode::Legacy'), 'only one bootMode system tag is allowed, but 2 got');
    refused(
      await update(qemuga.uuid, `checksum::md5::${'1'.repeat(32)}`),
      `no system tag matches[checksum::md5::${'1'.repeat(32)}] for resourceType[ImageVO]`,
    );
    const changed = await update(boot.uuid, 'bootMode::Legacy');
    assert.equal(changed.status, 200, changed.text);
    assert.equal(changed.body.inventory.tag, 'bootMode::Legacy');
  });
});

describe('refused access-key signatures in the metrics', () => {
  let server: TestServer;
  before(async () => {
    server = await startInProcess();
    await server.client.login();
  });
  after(async () => {
    await server?.stop();
  });

  /** `name{labels}` → value of the lines of /metrics that start with `prefix`. */
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  };
  const signedGet = (id: string, secret: string) => {
    const date = `${new Date().toUTCString().replace(/ GMT$/, '')} Etc/UTC`;
    const signature = createHmac('sha1', secret).update(`GET\n${date}\n/v1/zones`).digest('base64');
    return fetch(`${server.url}/zstack/v1/zones`, { headers: { Date: date, Authorization: `ZStack ${id}:${signature}` } });
  };

  test('an unknown key and a wrong signature each count as a failed login; a good signature does not', async () => {
    const created = await server.client.call('POST', '/accesskeys', { params: { accountUuid: ADMIN_UUID, userUuid: ADMIN_UUID } });
    assert.equal(created.status, 200, created.text);
    const key = { id: created.body.inventory.AccessKeyID as string, secret: created.body.inventory.AccessKeySecret as string };
    const logins0 = await metric('zimage_login_failures_total');
    const events0 = await metric('zimage_security_events_total{event="accesskey.failed"}');

    const good = await signedGet(key.id, key.secret);
    assert.equal(good.status, 200, await good.text());
    const wrong = await signedGet(key.id, 'x'.repeat(40));
    assert.equal(wrong.status, 403);
    assert.equal(await wrong.text(), 'wrong accessKey signature');
    const unknown = await signedGet('NoSuchKeyNoSuchKey00', key.secret);
    assert.equal(unknown.status, 403, await unknown.text());

    assert.equal((await metric('zimage_login_failures_total')) - logins0, 2);
    assert.equal((await metric('zimage_security_events_total{event="accesskey.failed"}')) - events0, 2);
  });
});
