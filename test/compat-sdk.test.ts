/**
 * Compatibility proof: every API is called the way ZStack's Java SDK (ZSClient) builds requests — action
 * object under its parameterName, query strings for GET/DELETE, OAuth header, X-Request-Ip — and the answers
 * are read the way the SDK reads them: 200 final, 202 → poll `location` (host rewritten at
 * /zstack/v1/api-jobs), 503 → `{"error": ErrorCode}`. The result shapes are checked field by field
 * against the SDK's result classes (types, date format, omitted nulls).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startInProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';

const DATE = /^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$/;
const UUID = /^[0-9a-f]{32}$/;

/** An SDK action descriptor, as in sdk/.../*Action.java (`RestInfo`). */
interface Action {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  parameterName?: string; // 'params' for POST creators, the action key for PUT actions
  needSession?: boolean;
}

class JavaSdkLikeClient {
  session?: string;
  constructor(private readonly configuredBase: string) {}

  /** ZSClient.call: returns {value} or {error}, as the SDK's Result classes do. */
  async call(
    action: Action,
    params: Record<string, unknown> = {},
    opts: { systemTags?: string[] } = {},
  ): Promise<{ value?: any; error?: any; http: number }> {
    let path = action.path;
    const rest: Record<string, unknown> = { ...params };
    for (const m of action.path.matchAll(/\{(\w+)\}/g)) {
      path = path.replace(m[0], encodeURIComponent(String(rest[m[1]!])));
      delete rest[m[1]!];
    }
    // ZSClient sends X-JSON-Schema on every call, so every reply carries its schema.
    const headers: Record<string, string> = { 'X-Request-Ip': '10.0.0.9', 'X-JSON-Schema': 'true' };
    if (action.needSession !== false && this.session) headers.Authorization = `OAuth ${this.session}`;
    let url = `${this.configuredBase}/zstack/v1${path}`;
    let body: string | undefined;
    if (action.method === 'GET' || action.method === 'DELETE') {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(rest)) for (const x of [v].flat()) qs.append(k, String(x));
      if ([...qs].length) url += `?${qs}`;
    } else {
      headers['Content-Type'] = 'application/json; charset=utf-8';
      body = JSON.stringify({ [action.parameterName!]: rest, ...(opts.systemTags ? { systemTags: opts.systemTags } : {}) });
    }
    const res = await fetch(url, { method: action.method, headers, body });
    const text = await res.text();
    if (res.status === 200 || res.status === 204) return { value: text ? JSON.parse(text) : {}, http: res.status };
    if (res.status !== 202) return { error: { code: 'sdk.1000', details: text }, http: res.status };
    // Poll: the SDK keeps the path and puts its configured host in front of it.
    const location = JSON.parse(text).location as string;
    const pollUrl = `${this.configuredBase}/zstack/v1/api-jobs${location.split('/zstack/v1/api-jobs')[1]}`;
    for (;;) {
      const p = await fetch(pollUrl);
      const ptext = await p.text();
      if (p.status === 200) return { value: JSON.parse(ptext), http: 200 };
      if (p.status === 503) return { error: JSON.parse(ptext).error, http: 503 };
      if (p.status !== 202) return { error: { code: 'sdk.1000', details: ptext }, http: p.status };
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const A = {
  login: { method: 'PUT', path: '/accounts/login', parameterName: 'logInByAccount', needSession: false },
  validate: { method: 'GET', path: '/accounts/sessions/{sessionUuid}/valid', needSession: false },
  renew: { method: 'PUT', path: '/accounts/sessions/{sessionUuid}/renew', parameterName: 'renewSession', needSession: false },
  logout: { method: 'DELETE', path: '/accounts/sessions/{sessionUuid}', needSession: false },
  addLocalBs: { method: 'POST', path: '/backup-storage/local', parameterName: 'params' },
  queryBs: { method: 'GET', path: '/backup-storage' },
  updateBs: { method: 'PUT', path: '/backup-storage/{uuid}/actions', parameterName: 'updateBackupStorage' },
  changeBsState: { method: 'PUT', path: '/backup-storage/{uuid}/actions', parameterName: 'changeBackupStorageState' },
  reconnectBs: { method: 'PUT', path: '/backup-storage/{uuid}/actions', parameterName: 'reconnectBackupStorage' },
  bsCapacity: { method: 'GET', path: '/backup-storage/capacities' },
  bsTypes: { method: 'GET', path: '/backup-storage/types' },
  deleteBs: { method: 'DELETE', path: '/backup-storage/{uuid}' },
  addImage: { method: 'POST', path: '/images', parameterName: 'params' },
  queryImage: { method: 'GET', path: '/images' },
  syncImageSize: { method: 'PUT', path: '/images/{uuid}/actions', parameterName: 'syncImageSize' },
  calculateImageHash: { method: 'PUT', path: '/images/{uuid}/actions', parameterName: 'calculateImageHash' },
  changeImageState: { method: 'PUT', path: '/images/{uuid}/actions', parameterName: 'changeImageState' },
  updateImage: { method: 'PUT', path: '/images/{uuid}/actions', parameterName: 'updateImage' },
  setImageBootMode: { method: 'PUT', path: '/images/{uuid}/actions', parameterName: 'setImageBootMode' },
  deleteImage: { method: 'DELETE', path: '/images/{uuid}' },
  recoverImage: { method: 'PUT', path: '/images/{imageUuid}/actions', parameterName: 'recoverImage' },
  expungeImage: { method: 'PUT', path: '/images/{imageUuid}/actions', parameterName: 'expungeImage' },
  taskProgress: { method: 'GET', path: '/task-progresses/{apiId}' },
} satisfies Record<string, Action>;

function assertImageInventory(inv: any): void {
  for (const k of ['uuid', 'name', 'state', 'status', 'url', 'mediaType', 'type', 'format', 'createDate', 'lastOpDate']) {
    assert.equal(typeof inv[k], 'string', `ImageInventory.${k}`);
  }
  assert.match(inv.uuid, UUID);
  assert.match(inv.createDate, DATE);
  for (const k of ['size', 'actualSize']) assert.ok(Number.isInteger(inv[k]), `ImageInventory.${k} is an integer`);
  assert.equal(typeof inv.system, 'boolean');
  assert.ok(Array.isArray(inv.backupStorageRefs));
  for (const r of inv.backupStorageRefs) {
    for (const k of ['imageUuid', 'backupStorageUuid', 'installPath', 'status', 'createDate', 'lastOpDate'])
      assert.equal(typeof r[k], 'string', `ref.${k}`);
  }
  for (const [k, v] of Object.entries(inv)) assert.notEqual(v, null, `${k} must be omitted rather than null`);
}

function assertBsInventory(inv: any): void {
  for (const k of ['uuid', 'name', 'url', 'type', 'state', 'status', 'createDate', 'lastOpDate'])
    assert.equal(typeof inv[k], 'string', `BackupStorageInventory.${k}`);
  for (const k of ['totalCapacity', 'availableCapacity']) assert.ok(Number.isInteger(inv[k]));
  assert.ok(Array.isArray(inv.attachedZoneUuids));
}

describe('ZStack Java SDK request and response shapes', () => {
  let server: TestServer;
  let work: string;
  let sdk: JavaSdkLikeClient; // logged in; shared by the tests that do not log in or out themselves
  let bs: string; // a local backup storage for the image tests

  // The SDK is configured with a hostname; the server hands out locations with what the request used.
  const sdkBase = () => server.url.replace('127.0.0.1', 'localhost');
  const adminPassword = createHash('sha512').update('password').digest('hex');
  const loggedInSdk = async (): Promise<JavaSdkLikeClient> => {
    const client = new JavaSdkLikeClient(sdkBase());
    const res = await client.call(A.login, { accountName: 'admin', password: adminPassword });
    assert.equal(res.http, 200, JSON.stringify(res.error));
    client.session = res.value.inventory.uuid;
    return client;
  };
  const addLocalBs = async (dir: string): Promise<string> => {
    await mkdir(join(work, dir));
    const added = await sdk.call(A.addLocalBs, { name: dir, url: join(work, dir), description: 'd' });
    assertBsInventory(added.value.inventory);
    return added.value.inventory.uuid;
  };
  const addImage = () =>
    sdk.call(
      A.addImage,
      {
        name: 'sdk',
        url: `file://${join(work, 'fixtures', 'a.raw')}`,
        format: 'raw',
        mediaType: 'RootVolumeTemplate',
        platform: 'Linux',
        backupStorageUuids: [bs],
        system: false,
      },
      { systemTags: ['bootMode::Legacy'] },
    );

  before(async () => {
    work = await tempDir();
    await mkdir(join(work, 'fixtures'));
    await writeFile(join(work, 'fixtures', 'a.raw'), randomBytes(1024 * 1024));
    server = await startInProcess({ syncWaitMs: 0 }, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    sdk = await loggedInSdk();
    bs = await addLocalBs('bs');
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('LogInByAccount / ValidateSession / RenewSession (SessionInventory)', async () => {
    const sdk = new JavaSdkLikeClient(sdkBase()); // not logged in: this test logs in itself
    const wrong = await sdk.call(A.login, { accountName: 'admin', password: 'x' });
    // Login is synchronous: the SDK reports a 503 as sdk.1000 with the raw body, which carries ID.1000.
    assert.equal(wrong.error.code, 'sdk.1000');
    assert.equal(JSON.parse(wrong.error.details).error.code, 'ID.1000');
    const res = await sdk.call(A.login, { accountName: 'admin', password: adminPassword, clientInfo: { ip: '1.2.3.4' } });
    const s = res.value.inventory;
    assert.match(s.uuid, UUID);
    assert.equal(s.accountUuid, '36c27e8ff05c4780bf6d2fa65700f22e');
    assert.equal(s.userType, 'AccountVO');
    assert.equal(s.noSessionEvaluation, false);
    assert.match(s.expiredDate, DATE);
    sdk.session = s.uuid;
    assert.deepEqual((await sdk.call(A.validate, { sessionUuid: s.uuid })).value, { valid: true, schema: {} });
    const renewed = await sdk.call(A.renew, { sessionUuid: s.uuid, duration: 600 });
    assert.match(renewed.value.inventory.expiredDate, DATE);
  });

  test('backup storage APIs', async () => {
    const bs = await addLocalBs('bs-apis');
    const q = await sdk.call(A.queryBs, { q: `uuid=${bs}`, replyWithCount: true });
    assert.equal(q.value.total, 1);
    assert.equal(typeof q.value.schema, 'object');
    assertBsInventory(q.value.inventories[0]);
    assertBsInventory((await sdk.call(A.updateBs, { uuid: bs, name: 'bs2' })).value.inventory);
    assert.equal((await sdk.call(A.changeBsState, { uuid: bs, stateEvent: 'disable' })).value.inventory.state, 'Disabled');
    assert.equal((await sdk.call(A.changeBsState, { uuid: bs, stateEvent: 'enable' })).value.inventory.state, 'Enabled');
    assertBsInventory((await sdk.call(A.reconnectBs, { uuid: bs })).value.inventory);
    const cap = await sdk.call(A.bsCapacity, { backupStorageUuids: [bs] });
    assert.ok(Number.isInteger(cap.value.totalCapacity) && Number.isInteger(cap.value.availableCapacity));
    assert.ok((await sdk.call(A.bsTypes)).value.types.includes('LocalBackupStorage'));
  });

  test('AddImage, QueryImage, SyncImageSize, CalculateImageHash, task progress', async () => {
    const add = await addImage();
    assertImageInventory(add.value.inventory);
    const image = add.value.inventory.uuid;
    const q = await sdk.call(A.queryImage, { q: [`uuid=${image}`, 'status=Ready'], limit: 10, start: 0, replyWithCount: true });
    assert.equal(q.value.total, 1);
    assert.equal(q.value.schema['inventories[0]'], 'org.zstack.header.image.ImageInventory');
    assertImageInventory(q.value.inventories[0]);
    const synced = (await sdk.call(A.syncImageSize, { uuid: image })).value;
    assertImageInventory(synced.inventory);
    assert.deepEqual(synced.schema, {
      inventory: 'org.zstack.header.image.ImageInventory',
      'inventory.backupStorageRefs[0]': 'org.zstack.header.image.ImageBackupStorageRefInventory',
    });
    const zc = new ZClient(server.url);
    zc.session = sdk.session;
    const plain = await zc.call('PUT', `/images/${image}/actions`, { syncImageSize: {} });
    assert.equal(plain.body.schema, undefined, 'no schema unless asked for');
    const hash = await sdk.call(A.calculateImageHash, { uuid: image, backupStorageUuid: bs, algorithm: 'SHA1' });
    assertImageInventory(hash.value.inventory);
    assert.match(hash.value.inventory.md5Sum, /^[0-9a-f]{40}$/);
    const bad = await sdk.call(A.calculateImageHash, { uuid: image, backupStorageUuid: bs, algorithm: 'SHA3' });
    assert.equal(bad.http, 503);
    for (const k of ['code', 'description', 'details']) assert.equal(typeof bad.error[k], 'string', `ErrorCode.${k}`);
    assert.equal(bad.error.code, 'SYS.1007');
    const progress = await sdk.call(A.taskProgress, { apiId: 'f'.repeat(32) });
    assert.deepEqual(progress.value, { inventories: [], schema: {} });
  });

  test('ChangeImageState, UpdateImage, SetImageBootMode, DeleteImage, RecoverImage, ExpungeImage', async () => {
    const added = await addImage();
    assertImageInventory(added.value.inventory);
    const image = added.value.inventory.uuid;
    assertImageInventory((await sdk.call(A.changeImageState, { uuid: image, stateEvent: 'disable' })).value.inventory);
    const upd = await sdk.call(A.updateImage, { uuid: image, name: 'renamed', guestOsType: 'CentOS 7' });
    assert.equal(upd.value.inventory.guestOsType, 'CentOS 7');
    assert.deepEqual((await sdk.call(A.setImageBootMode, { uuid: image, bootMode: 'UEFI' })).value, { schema: {} });
    assert.deepEqual((await sdk.call(A.deleteImage, { uuid: image, deleteMode: 'Permissive' })).value, { schema: {} });
    const rec = await sdk.call(A.recoverImage, { imageUuid: image, backupStorageUuids: [bs] });
    assert.equal(rec.value.inventory.status, 'Ready');
    await sdk.call(A.deleteImage, { uuid: image, backupStorageUuids: [bs] });
    assert.deepEqual((await sdk.call(A.expungeImage, { imageUuid: image })).value, { schema: {} });
    assert.deepEqual((await sdk.call(A.queryImage, { q: `uuid=${image}` })).value.inventories, []);
  });

  test('DeleteBackupStorage and LogOut', async () => {
    // Its own storage and session: deleting and logging out take nothing from the other tests.
    const bs = await addLocalBs('bs-deleted');
    const sdk = await loggedInSdk();
    assert.deepEqual((await sdk.call(A.deleteBs, { uuid: bs })).value, { schema: {} });
    assert.deepEqual((await sdk.call(A.logout, { sessionUuid: sdk.session })).value, { schema: {} });
    const after = await sdk.call(A.queryImage, {});
    assert.equal(after.http, 503, 'a synchronous error is not parsed by the SDK: it sees the raw 503 body');
    assert.match(after.error.details, /ID\.1001/);
  });
});
