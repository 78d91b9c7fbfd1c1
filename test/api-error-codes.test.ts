/**
 * ZStack's error codes and texts, check by check, as its own source gives them at each place (ImageBase,
 * ImageApiInterceptor, ImageManagerImpl, BackupStorageApiInterceptor, BackupStorageManagerImpl,
 * PortApiValidator, LongJobApiInterceptor, CephApiInterceptor), over real HTTP with bytes on disk checked.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { startInProcess, tempDir, waitFor, type TestServer } from './helpers/zimage.js';
import { assertZStackError } from './helpers/assert.js';

const UNKNOWN = 'a'.repeat(12) + '4' + 'a'.repeat(3) + '8' + 'a'.repeat(15);
const UNKNOWN2 = 'b'.repeat(12) + '4' + 'b'.repeat(3) + '8' + 'b'.repeat(15);

describe('ZStack error codes, check by check', () => {
  let work: string;
  let server: TestServer;
  let http: TestHttpServer;
  let one: string;
  let two: string;
  let three: string;
  const file = () => join(work, 'fixtures', 'a.raw');
  const c = () => server.client;
  const add = async (name: string, bs: string[], extra: Record<string, unknown> = {}) => {
    const res = await c().call('POST', '/images', {
      params: { name, url: `file://${file()}`, format: 'raw', backupStorageUuids: bs, ...extra },
    });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };
  const failure = async (method: string, path: string, body: unknown, code: string, details?: string | RegExp) => {
    return assertZStackError(await c().call(method, path, body), code, details);
  };
  const image = async (uuid: string) => (await c().call('GET', `/images/${uuid}`)).body.inventories[0];
  /** Paths under a storage's directory that belong to this image (its bytes, partial or committed). */
  const bytesOf = async (dir: string, uuid: string) =>
    (await readdir(join(work, dir), { recursive: true })).filter((n) => n.includes(uuid));

  before(async () => {
    work = await tempDir('zimage-errcodes-');
    await mkdir(join(work, 'fixtures'));
    await writeFile(file(), randomBytes(256 * 1024));
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    await server.client.login();
    const ids: string[] = [];
    for (const n of ['one', 'two', 'three']) {
      await mkdir(join(work, n));
      ids.push((await server.client.addLocalStorage(join(work, n), `bs-${n}`)).uuid);
    }
    [one, two, three] = ids as [string, string, string];
    http = await startTestHttpServer({ 'slow.raw': randomBytes(1024 * 1024) });
  });
  after(async () => {
    await server?.stop();
    await http?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('ExpungeImage: ImageBase argerr per named storage, operr without; unknown storage is PortApiValidator SYS.1003', async () => {
    const img = await add('expunge', [one, two]);
    const name = `the image[uuid:${img.uuid}, name:expunge]`;
    await failure('PUT', `/images/${img.uuid}/actions`, { expungeImage: {} }, 'SYS.1006', `${name} is not deleted on any backup storage`);
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { expungeImage: { backupStorageUuids: [one] } },
      'SYS.1007',
      `${name} is not deleted on the backup storage[uuid:${one}]`,
    );
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { expungeImage: { backupStorageUuids: [three] } },
      'SYS.1007',
      `${name} is not on the backup storage[uuid:${three}]`,
    );
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { expungeImage: { backupStorageUuids: [UNKNOWN, one, UNKNOWN2] } },
      'SYS.1003',
      `invalid field[backupStorageUuids], resource[uuids:[${UNKNOWN}, ${UNKNOWN2}], type:BackupStorageVO] not found`,
    );
    await failure(
      'PUT',
      `/images/${UNKNOWN}/actions`,
      { expungeImage: {} },
      'SYS.1003',
      `invalid field[imageUuid], resource[uuid:${UNKNOWN}, type:ImageVO] not found`,
    );
    // Deleted on `two` only: expunging it there works and leaves the copy on `one`.
    assert.equal((await c().call('DELETE', `/images/${img.uuid}?backupStorageUuids=${two}`)).status, 200);
    assert.equal((await c().call('PUT', `/images/${img.uuid}/actions`, { expungeImage: { backupStorageUuids: [two] } })).status, 200);
    assert.deepEqual(
      (await image(img.uuid)).backupStorageRefs.map((r: any) => r.backupStorageUuid),
      [one],
    );
  });

  test('RecoverImage: ImageBase argerr per named storage (its list is not checked for existence), operr without', async () => {
    const img = await add('recover', [one, two]);
    const name = `the image[uuid:${img.uuid}, name:recover]`;
    await failure('PUT', `/images/${img.uuid}/actions`, { recoverImage: {} }, 'SYS.1006', `${name} is not deleted on any backup storage`);
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { recoverImage: { backupStorageUuids: [one] } },
      'SYS.1007',
      `${name}'s status[Ready] is not Deleted on the backup storage[uuid:${one}]`,
    );
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { recoverImage: { backupStorageUuids: [three] } },
      'SYS.1007',
      `${name} is not on the backup storage[uuid:${three}]`,
    );
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { recoverImage: { backupStorageUuids: [UNKNOWN] } },
      'SYS.1007',
      `${name} is not on the backup storage[uuid:${UNKNOWN}]`,
    );
  });

  test('DeleteImage: a named storage without a copy is skipped; an unknown one is SYS.1003', async () => {
    const img = await add('delete', [one]);
    const skipped = await c().call('DELETE', `/images/${img.uuid}?backupStorageUuids=${two}`);
    assert.equal(skipped.status, 200, skipped.text);
    assert.equal((await image(img.uuid)).status, 'Ready', 'nothing was deleted');
    await failure(
      'DELETE',
      `/images/${img.uuid}?backupStorageUuids=${UNKNOWN}`,
      undefined,
      'SYS.1003',
      `invalid field[backupStorageUuids], resource[uuids:[${UNKNOWN}], type:BackupStorageVO] not found`,
    );
  });

  test('ChangeImageState and UpdateImage work on a Deleted image (ImageBase has no status check)', async () => {
    const img = await add('deleted-meta', [one]);
    assert.equal((await c().call('DELETE', `/images/${img.uuid}`)).status, 200);
    const state = await c().call('PUT', `/images/${img.uuid}/actions`, { changeImageState: { stateEvent: 'disable' } });
    assert.equal(state.status, 200, state.text);
    assert.equal(state.body.inventory.state, 'Disabled');
    assert.equal(state.body.inventory.status, 'Deleted');
    const upd = await c().call('PUT', `/images/${img.uuid}/actions`, { updateImage: { description: 'while deleted' } });
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.body.inventory.description, 'while deleted');
    // SyncImageSize measures Ready copies only: a Deleted image says so (not "no connected backup storage").
    await failure(
      'PUT',
      `/images/${img.uuid}/actions`,
      { syncImageSize: {} },
      'SYS.1006',
      `the image[uuid:${img.uuid}, name:deleted-meta] has no Ready copy to measure (Deleted on backup storage[uuid:${one}])`,
    );
  });

  test('DeleteImage while a URL add runs: it succeeds, the add fails "has been deleted", no bytes or rows left', async () => {
    const uuid = randomUUID().replace(/-/g, '');
    const started = await c().raw('POST', '/images', {
      params: { name: 'slow', url: http.url('/stall/slow.raw?after=65536'), format: 'raw', backupStorageUuids: [two], resourceUuid: uuid },
    });
    assert.equal(started.status, 202, started.text);
    await waitFor('the add to be Downloading', async () => (await image(uuid))?.status === 'Downloading');
    const del = await c().call('DELETE', `/images/${uuid}`);
    assert.equal(del.status, 200, del.text);
    const end = await c().poll(started.body.location);
    assert.equal(end.status, 503, end.text);
    assert.equal(end.body.error.code, 'SYS.1006');
    assert.equal(end.body.error.details, `image [uuid:${uuid}] has been deleted`);
    assert.equal(await image(uuid), undefined);
    assert.deepEqual(await bytesOf('two', uuid), [], 'no partial bytes left');
    const refs = await server.app!.db.db.selectFrom('image_backup_storage_ref').selectAll().where('image_uuid', '=', uuid).execute();
    assert.deepEqual(refs, []);
  });

  test('DeleteImage of an upload:// image waiting for bytes removes the pending upload: its PUTs answer 410', async () => {
    const res = await c().call('POST', '/images', {
      params: { name: 'pending', url: 'upload://p.raw', format: 'raw', backupStorageUuids: [three] },
    });
    assert.equal(res.status, 200, res.text);
    const { uuid, url } = res.body.inventory;
    const part = await fetch(url, { method: 'PUT', body: new Uint8Array(randomBytes(4096)), headers: { 'X-Offset': '0' } });
    assert.ok(part.ok, await part.text());
    assert.notDeepEqual(await bytesOf('three', uuid), [], 'the first part is stored');
    assert.equal((await c().call('DELETE', `/images/${uuid}`)).status, 200);
    assert.equal(await image(uuid), undefined);
    assert.deepEqual(await bytesOf('three', uuid), [], 'the partial upload is removed');
    const after = await fetch(url, { method: 'PUT', body: 'more', headers: { 'X-Offset': '4096' } });
    assert.equal(after.status, 410);
    assert.match(await after.text(), new RegExp(`image \\[uuid:${uuid}\\] has been deleted`));
  });

  test('AddImage: unknown type, url over 1024 characters, Disabled storage, unusable storages (ImageApiInterceptor)', async () => {
    await failure(
      'POST',
      '/images',
      { params: { name: 't', url: `file://${file()}`, format: 'raw', type: 'qcow', backupStorageUuids: [one] } },
      'SYS.1007',
      'unsupported image type[qcow]',
    );
    const long = `http://example.com/${'x'.repeat(1010)}`;
    await failure(
      'POST',
      '/images',
      { params: { name: 'u', url: long, backupStorageUuids: [one] } },
      'SYS.1007',
      `field[url] of message[org.zstack.header.image.APIAddImageMsg] exceeds max length of string. expected was <= 1024, actual was ${long.length}`,
    );
    await failure(
      'POST',
      '/images',
      { params: { name: 'u', url: `file://${file()}`, backupStorageUuids: [UNKNOWN] } },
      'SYS.1003',
      `invalid field[backupStorageUuids], resource[uuids:[${UNKNOWN}], type:BackupStorageVO] not found`,
    );
    // A Disabled (but Connected) storage refuses the download: the whole add fails, SYS.1002 caused by SYS.1006.
    await c().call('PUT', `/backup-storage/${two}/actions`, { changeBackupStorageState: { stateEvent: 'disable' } });
    try {
      const err = await failure(
        'POST',
        '/images',
        { params: { name: 'dis', url: `file://${file()}`, format: 'raw', backupStorageUuids: [two] } },
        'SYS.1002',
        `Failed to download image[name:dis] on all backup storage[${two}].`,
      );
      assert.equal(err.cause.code, 'SYS.1006');
      assert.equal(
        err.cause.details,
        'backup storage cannot proceed message[org.zstack.header.storage.backup.DownloadImageMsg] because its state is Disabled',
      );
    } finally {
      await c().call('PUT', `/backup-storage/${two}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } });
    }
    // An unusable (Disconnected) storage among usable ones is dropped; none usable is SYS.1006.
    await mkdir(join(work, 'gone'));
    const gone = (await c().addLocalStorage(join(work, 'gone'), 'bs-gone')).uuid;
    await rm(join(work, 'gone'), { recursive: true });
    const img = await add('some', [gone, one]);
    assert.deepEqual(
      img.backupStorageRefs.map((r: any) => r.backupStorageUuid),
      [one],
    );
    await failure(
      'POST',
      '/images',
      { params: { name: 'none', url: `file://${file()}`, format: 'raw', backupStorageUuids: [gone] } },
      'SYS.1006',
      `no backup storage specified in uuids[${gone}] is available for adding this image; they are not in status Connected or not in state Enabled, or the uuid is invalid backup storage uuid`,
    );
  });

  test('resourceUuid of a create API must be a ZStack uuid (ApiMediatorImpl): AddImage, AddLocalBackupStorage, CreateZone, CreateAccessKey', async () => {
    const text = (v: string) =>
      `resourceUuid[${v}] is not a valid uuid. A valid uuid is a UUID(v4 recommended) with '-' stripped. see http://en.wikipedia.org/wiki/Universally_unique_identifier for format of UUID, the regular expression uses to validate a UUID is '[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}'`;
    await failure(
      'POST',
      '/images',
      { params: { name: 'r', url: `file://${file()}`, format: 'raw', backupStorageUuids: [one], resourceUuid: 'my-image' } },
      'SYS.1007',
      text('my-image'),
    );
    await failure(
      'POST',
      '/backup-storage/local',
      { params: { name: 'r', url: join(work, 'one'), resourceUuid: 'A'.repeat(32) } },
      'SYS.1007',
      text('A'.repeat(32)),
    );
    await failure('POST', '/zones', { params: { name: 'z', resourceUuid: 'zone-1' } }, 'SYS.1007', text('zone-1'));
    // Before any other check: the account need not even exist.
    await failure(
      'POST',
      '/accesskeys',
      { params: { accountUuid: UNKNOWN, userUuid: UNKNOWN, resourceUuid: 'key-1' } },
      'SYS.1007',
      text('key-1'),
    );
  });

  test('bootMode system tags: one at most on AddImage, a valid mode (ImageManagerImpl BootModeValidator), CreateSystemTag too', async () => {
    const params = { name: 'boot', url: `file://${file()}`, format: 'raw', backupStorageUuids: [one] };
    await failure(
      'POST',
      '/images',
      { params, systemTags: ['bootMode::UEFI', 'bootMode::Legacy'] },
      'SYS.1007',
      'only one bootMode system tag is allowed, but 2 got',
    );
    await failure(
      'POST',
      '/images',
      { params, systemTags: ['bootMode::BIOS'] },
      'SYS.1007',
      '[BIOS] specified in system tag [bootMode::BIOS] is not a valid boot mode',
    );
    const ok = await c().call('POST', '/images', { params, systemTags: ['bootMode::uefi'] });
    assert.equal(ok.status, 200, ok.text);
    // The same validator guards CreateSystemTag and UpdateSystemTag.
    const tagBody = { params: { resourceType: 'ImageVO', resourceUuid: ok.body.inventory.uuid, tag: 'bootMode::BIOS' } };
    await failure('POST', '/system-tags', tagBody, 'SYS.1007', '[BIOS] specified in system tag [bootMode::BIOS] is not a valid boot mode');
  });

  test('SetImageBootMode Legacy on an aarch64 image is SYS.1007 (ImageApiInterceptor)', async () => {
    const arm = await add('arm', [one], { architecture: 'aarch64' });
    await failure(
      'PUT',
      `/images/${arm.uuid}/actions`,
      { setImageBootMode: { bootMode: 'Legacy' } },
      'SYS.1007',
      'The aarch64 architecture does not support legacy.',
    );
    assert.equal((await c().call('PUT', `/images/${arm.uuid}/actions`, { setImageBootMode: { bootMode: 'UEFI' } })).status, 200);
  });

  test('CancelLongJob: succeeded or failed jobs are SYS.1007 (LongJobApiInterceptor); a cancelled job cancels again fine', async () => {
    const img = await add('cancel', [one]);
    const done = await c().raw('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': 'c1'.repeat(16) });
    assert.equal(done.status, 200, done.text);
    await failure(
      'PUT',
      `/longjobs/${'c1'.repeat(16)}/actions`,
      { cancelLongJob: {} },
      'SYS.1007',
      'cannot cancel longjob that is succeeded',
    );
    const bad = await c().call('PUT', `/images/${UNKNOWN}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': 'c2'.repeat(16) });
    assert.equal(bad.status, 503, bad.text);
    await failure('PUT', `/longjobs/${'c2'.repeat(16)}/actions`, { cancelLongJob: {} }, 'SYS.1007', 'cannot cancel longjob that is failed');

    const job = 'c3'.repeat(16);
    const slow = await c().raw(
      'POST',
      '/images',
      { params: { name: 'slow2', url: http.url('/stall/slow.raw?after=1024'), format: 'raw', backupStorageUuids: [one] } },
      { 'X-Job-UUID': job },
    );
    assert.equal(slow.status, 202, slow.text);
    assert.equal((await c().call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} })).status, 200);
    const end = await c().poll(slow.body.location);
    assert.equal(end.status, 503);
    assert.equal(end.body.error.code, 'SYS.1017', 'a cancelled job still polls as a cancel');
    const row = await server.app!.db.db.selectFrom('api_job').select('state').where('uuid', '=', job).executeTakeFirstOrThrow();
    assert.equal(row.state, 'Canceled');
    const again = await c().call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(again.status, 200, again.text);
    assert.equal((await c().poll(slow.body.location)).body.error.code, 'SYS.1017', 'unchanged');
  });

  test('GetBackupStorageCapacity: one of the lists or all is required; unknown storages are SYS.1003', async () => {
    await failure(
      'GET',
      '/backup-storage/capacities',
      undefined,
      'SYS.1007',
      'zoneUuids, backupStorageUuids must have at least one be none-empty list, or all is set to true',
    );
    await failure(
      'GET',
      `/backup-storage/capacities?backupStorageUuids=${one}&backupStorageUuids=${UNKNOWN}`,
      undefined,
      'SYS.1003',
      `invalid field[backupStorageUuids], resource[uuids:[${UNKNOWN}], type:BackupStorageVO] not found`,
    );
    const named = await c().call('GET', `/backup-storage/capacities?backupStorageUuids=${one}&all=true`);
    const oneInv = (await c().call('GET', `/backup-storage/${one}`)).body.inventories[0];
    assert.equal(named.body.totalCapacity, oneInv.totalCapacity, 'named storages win over all');
    await failure(
      'GET',
      `/backup-storage/capacities?zoneUuids=${UNKNOWN}`,
      undefined,
      'SYS.1003',
      `invalid field[zoneUuids], resource[uuids:[${UNKNOWN}], type:ZoneVO] not found`,
    );
    const zone = (await c().call('POST', '/zones', { params: { name: 'cap-zone' } })).body.inventory.uuid;
    assert.equal((await c().call('POST', `/zones/${zone}/backup-storage/${one}`, { params: {} })).status, 200);
    const byZone = await c().call('GET', `/backup-storage/capacities?zoneUuids=${zone}`);
    assert.equal(byZone.status, 200, byZone.text);
    assert.deepEqual(byZone.body.totalCapacity, oneInv.totalCapacity, 'the storages attached to the zone');
  });

  test('export: exportFormat outside [raw, qcow2] is SYS.1007; withdrawing an export of an image without a copy there succeeds', async () => {
    const img = await add('export', [one]);
    await failure(
      'PUT',
      `/backup-storage/${one}/actions`,
      { exportImageFromBackupStorage: { imageUuid: img.uuid, exportFormat: 'vmdk' } },
      'SYS.1007',
      'valid value for field[exportFormat] of message[org.zstack.header.storage.backup.APIExportImageFromBackupStorageMsg] are [raw, qcow2], but vmdk found',
    );
    const del = await c().call('DELETE', `/backup-storage/${two}/exported-images/${img.uuid}`);
    assert.equal(del.status, 200, del.text);
  });

  test('Add that cannot connect is SYS.1002 caused by the connect error; ReconnectBackupStorage passes it on (SYS.1006)', async () => {
    const err = await failure('POST', '/backup-storage/local', { params: { name: 'nowhere', url: join(work, 'missing') } }, 'SYS.1002');
    assert.equal(err.cause.code, 'SYS.1006');
    assert.equal(err.cause.details, err.details);
    await mkdir(join(work, 'brief'));
    const bs = (await c().addLocalStorage(join(work, 'brief'), 'bs-brief')).uuid;
    await rm(join(work, 'brief'), { recursive: true });
    await failure('PUT', `/backup-storage/${bs}/actions`, { reconnectBackupStorage: {} }, 'SYS.1006', /cannot connect backup storage/);
  });

  test('AddCephBackupStorage: the same monitor host twice is SYS.1007 (CephApiInterceptor), before any connection', async () => {
    await failure(
      'POST',
      '/backup-storage/ceph',
      { params: { name: 'c', monUrls: ['192.0.2.1', 'root:password@192.0.2.1:6789'], poolName: 'rbd' } },
      'SYS.1007',
      'Cannot add same host[192.0.2.1] in mons',
    );
    await failure(
      'POST',
      '/backup-storage/ceph',
      { params: { name: 'c', monUrls: ['192.0.2.1'], poolName: '' } },
      'SYS.1007',
      'poolName can be null but cannot be an empty string',
    );
  });
});
