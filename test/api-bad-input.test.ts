/**
 * Bad input, each answered by a ZStack error with a helpful `details`; the server stays up and leaves no
 * partial file or half-written row behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { execFileP, startInProcess, tempDir, type TestServer, ZClient } from './helpers/zimage.js';
import { assertZStackError } from './helpers/assert.js';

/** Every file below a directory (recursive), to prove nothing was left behind. */
async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe('bad input', () => {
  let server: TestServer;
  let http: TestHttpServer;
  let work: string;
  let fixtures: string;
  let storageDir: string;
  let bsUuid: string;
  let c: ZClient;
  let imageUuid: string;

  const expectJobError = async (method: string, path: string, body: unknown, code: string, details: RegExp) => {
    const first = await c.raw(method, path, body);
    assert.equal(first.status, 202, `failures go through the job: ${first.text}`);
    assert.match(first.body.location, /\/zstack\/v1\/api-jobs\/[0-9a-f]{32}$/);
    const error = assertZStackError(await c.poll(first.body.location), code, details);
    assert.equal(typeof error.description, 'string');
    return error;
  };
  const imageRows = async () => (await c.call('GET', '/images?count=true')).body.total as number;

  before(async () => {
    work = await tempDir();
    fixtures = join(work, 'fixtures');
    storageDir = join(work, 'storage');
    await mkdir(fixtures);
    await mkdir(storageDir);
    await writeFile(join(fixtures, 'ok.raw'), randomBytes(1024 * 1024));
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', join(fixtures, 'base.qcow2'), '64M']);
    await execFileP('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      join(fixtures, 'base.qcow2'),
      '-F',
      'qcow2',
      join(fixtures, 'backed.qcow2'),
    ]);
    await writeFile(join(work, 'secret.raw'), randomBytes(4096));
    await symlink(join(work, 'secret.raw'), join(fixtures, 'escape.raw'));
    http = await startTestHttpServer({ 'ok.raw': { path: join(fixtures, 'ok.raw') }, 'big.raw': randomBytes(2 * 1024 * 1024) });
    server = await startInProcess({ syncWaitMs: 0 }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
    c = server.client;
    await c.login();
    bsUuid = (await c.addLocalStorage(storageDir)).uuid;
    const added = await c.call('POST', '/images', {
      params: { name: 'ok', url: `file://${join(fixtures, 'ok.raw')}`, format: 'raw', backupStorageUuids: [bsUuid] },
    });
    assert.equal(added.status, 200, added.text);
    imageUuid = added.body.inventory.uuid;
  });

  after(async () => {
    await server?.stop();
    await http?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('malformed JSON is a plain-text 400', async () => {
    const res = await c.raw('POST', '/images', '{"params": {"name": ');
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(res.text, /not valid JSON/);
  });

  test("wrong field types get ZStack's TypeVerifier answers", async () => {
    const bool = await c.raw('POST', '/images', { params: { name: 'x', url: 'http://127.0.0.1/x', system: 'yes' } });
    assert.equal(bool.status, 400);
    assert.equal(bool.text, 'Invalid value for boolean field [system], [yes] is not a valid boolean string[true, false].');
    const list = await c.raw('POST', '/images', { params: { name: 'x', url: 'http://127.0.0.1/x', backupStorageUuids: 'abc' } });
    assert.equal(list.status, 400);
    assert.match(list.text, /\[backupStorageUuids\] field is excepted a list of strings/);
    const obj = await c.raw('POST', '/images', { params: { name: { a: 1 }, url: 'x' } });
    assert.equal(obj.status, 400);
    assert.match(obj.text, /\[name\] field is excepted a string/);
    const limit = await c.raw('GET', '/images?limit=ten');
    assert.equal(limit.status, 400);
    assert.equal(limit.text, "Invalid query parameter. 'limit' must be an integer");
  });

  test('prototype names in q= and sort=, and limit/start past 2^31-1, are clear errors, never a 500', async () => {
    for (const path of ['/images', '/backup-storage', '/zones', '/accesskeys', '/tags', '/system-tags', '/user-tags']) {
      for (const query of [
        'q=__proto__=1',
        'q=constructor=1',
        'q=toString=1',
        'q=backupStorageRefs.__proto__=1',
        'q=__proto__.uuid=1',
        'sort=__proto__',
        'sort=-constructor',
      ]) {
        const res = await c.raw('GET', `${path}?${query}`);
        assert.equal(res.status, 503, `${path}?${query}: ${res.text}`);
        assert.equal(res.body.error.code, 'SYS.1007', `${path}?${query}: ${res.text}`);
      }
      for (const query of ['limit=99999999999999999999', 'start=2147483648', 'limit=2147483648']) {
        const res = await c.raw('GET', `${path}?${query}`);
        assert.equal(res.status, 400, `${path}?${query}: ${res.text}`);
        assert.match(res.text, /^Invalid query parameter\. '(limit|start)' must be an integer$/);
      }
      const max = await c.raw('GET', `${path}?limit=2147483647&start=2147483647`);
      assert.equal(max.status, 200, `${path}: ${max.text}`);
    }
  });

  test('a tag on a prototype-named resource type is SYS.1007, not an internal error', async () => {
    for (const resourceType of ['__proto__', 'constructor', 'toString']) {
      await expectJobError(
        'POST',
        '/system-tags',
        { params: { resourceType, resourceUuid: imageUuid, tag: 'bootMode::UEFI' } },
        'SYS.1007',
        /no resource type/,
      );
      await expectJobError(
        'POST',
        '/user-tags',
        { params: { resourceType, resourceUuid: imageUuid, tag: 'hello' } },
        'SYS.1007',
        /no resource type/,
      );
    }
  });

  test('missing required fields are SYS.1007 through the job', async () => {
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'no-url' } },
      'SYS.1007',
      /^field\[url\] of message\[org\.zstack\.header\.image\.APIAddImageMsg\] is mandatory, can not be null$/,
    );
    await expectJobError(
      'PUT',
      `/images/${imageUuid}/actions`,
      { calculateImageHash: {} },
      'SYS.1007',
      /field\[backupStorageUuid\] of message\[org\.zstack\.header\.image\.APICalculateImageHashMsg\] is mandatory/,
    );
  });

  test('an unsupported algorithm names the valid values', async () => {
    await expectJobError(
      'PUT',
      `/images/${imageUuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bsUuid, algorithm: 'CRC32' } },
      'SYS.1007',
      /^valid value for field\[algorithm\] of message\[org\.zstack\.header\.image\.APICalculateImageHashMsg\] are \[MD5, SHA1, SHA256, SHA512, SM3\], but CRC32 found$/,
    );
  });

  test('an unknown action key is a plain-text 400', async () => {
    const res = await c.raw('PUT', `/images/${imageUuid}/actions`, { frobnicateImage: {} });
    assert.equal(res.status, 400);
    assert.equal(res.text, `the body doesn't contain action mapping to the URL[/zstack/v1/images/${imageUuid}/actions]`);
  });

  test('unknown and malformed uuids are SYS.1003', async () => {
    const unknown = 'a'.repeat(32);
    await expectJobError(
      'PUT',
      `/images/${unknown}/actions`,
      { syncImageSize: {} },
      'SYS.1003',
      new RegExp(`resource\\[uuid:${unknown}, type:ImageVO\\] not found`),
    );
    await expectJobError(
      'PUT',
      `/images/not-a-uuid/actions`,
      { syncImageSize: {} },
      'SYS.1003',
      /resource\[uuid:not-a-uuid, type:ImageVO\] not found/,
    );
    await expectJobError(
      'PUT',
      `/images/${imageUuid}/actions`,
      { calculateImageHash: { backupStorageUuid: unknown } },
      'SYS.1003',
      /invalid field\[backupStorageUuid\], resource\[uuid:a{32}, type:BackupStorageVO\] not found/,
    );
  });

  test('no session, a wrong scheme, or an unknown / expired session', async () => {
    const anon = new ZClient(server.url);
    const missing = await anon.raw('GET', '/images');
    assert.equal(missing.status, 400);
    assert.equal(missing.text, "missing header 'Authorization'");
    const scheme = await anon.raw('GET', '/images', undefined, { Authorization: `Bearer ${c.session}` });
    assert.equal(scheme.status, 400);
    assert.equal(scheme.text, "Authorization type must be 'OAuth'");
    anon.session = 'f'.repeat(32);
    const sync = await anon.raw('GET', '/images');
    assert.equal(sync.status, 503);
    assert.equal(sync.body.error.code, 'ID.1001');
    assert.equal(sync.body.error.details, 'Session expired');
    const asyncFirst = await anon.raw('PUT', `/images/${imageUuid}/actions`, { syncImageSize: {} });
    assert.equal(asyncFirst.status, 202);
    const asyncRes = await anon.poll(asyncFirst.body.location);
    assert.equal(asyncRes.body.error.code, 'ID.1001');
    // An expired session: make one, then age it in the database.
    const other = new ZClient(server.url);
    const s = await other.login();
    await server
      .app!.db.db.updateTable('session')
      .set({ expired_date: Date.now() - 1000 })
      .where('uuid', '=', s)
      .execute();
    const expired = await other.raw('GET', '/images');
    assert.equal(expired.status, 503);
    assert.equal(expired.body.error.code, 'ID.1001');
  });

  test('a wrong password is ID.1000', async () => {
    const res = await new ZClient(server.url).raw('PUT', '/accounts/login', {
      logInByAccount: { accountName: 'admin', password: 'b'.repeat(128) },
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'ID.1000');
    assert.equal(res.body.error.details, 'wrong account name or password');
  });

  test('file:/// outside the allowed roots, through .. or a symlink, is refused and leaves nothing', async () => {
    const before = await imageRows();
    for (const url of ['file:///etc/passwd', `file://${fixtures}/../secret.raw`, `file://${join(fixtures, 'escape.raw')}`]) {
      await expectJobError(
        'POST',
        '/images',
        { params: { name: 'evil', url, format: 'raw', backupStorageUuids: [bsUuid] } },
        'SYS.1007',
        /outside|not inside|allowed|refused/i,
      );
    }
    assert.equal(await imageRows(), before);
  });

  test('http(s) aimed at link-local / metadata, directly or by redirect, is refused', async () => {
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'meta', url: 'http://169.254.169.254/latest/meta-data', backupStorageUuids: [bsUuid] } },
      'SYS.1007',
      /169\.254/,
    );
    const redirect = http.url(`/redirect?to=${encodeURIComponent('http://169.254.169.254/x')}`);
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'meta2', url: redirect, backupStorageUuids: [bsUuid] } },
      'SYS.1007',
      /169\.254/,
    );
  });

  test('a URL that 404s or drops mid-transfer fails the add and leaves no file and no row', async () => {
    const before = await imageRows();
    const filesBefore = await filesBelow(storageDir);
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'gone', url: http.url('/files/nope.raw'), backupStorageUuids: [bsUuid] } },
      'BS.1000',
      /404/,
    );
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'cut', url: http.url('/drop/big.raw'), backupStorageUuids: [bsUuid] } },
      'BS.1000',
      /./,
    );
    assert.equal(await imageRows(), before);
    assert.deepEqual(await filesBelow(storageDir), filesBefore);
  });

  test('raw declared over qcow2 bytes, and an unsafe qcow2 with a backing file, are refused and leave nothing', async () => {
    const before = await imageRows();
    const filesBefore = await filesBelow(storageDir);
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'liar', url: `file://${join(fixtures, 'base.qcow2')}`, format: 'raw', backupStorageUuids: [bsUuid] } },
      'SYS.1007',
      /declared format\[raw\].*detected format\[qcow2\]/,
    );
    await expectJobError(
      'POST',
      '/images',
      { params: { name: 'backed', url: `file://${join(fixtures, 'backed.qcow2')}`, format: 'qcow2', backupStorageUuids: [bsUuid] } },
      'SYS.1006',
      /unsafe.*backing/i,
    );
    assert.equal(await imageRows(), before);
    assert.deepEqual(await filesBelow(storageDir), filesBefore);
  });

  test('a backup storage that is full fails the add cleanly (real tmpfs)', async (t) => {
    const small = join(work, 'small');
    await mkdir(small);
    try {
      await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    } catch (err) {
      t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); needs root`);
      return;
    }
    try {
      const bs = await c.addLocalStorage(small, 'tiny');
      const before = await imageRows();
      // Unknown length (chunked) so the early capacity check cannot refuse it: the write itself runs out of space.
      await expectJobError(
        'POST',
        '/images',
        { params: { name: 'too-big', url: http.url('/chunked/big.raw'), backupStorageUuids: [bs.uuid] } },
        'SYS.1006',
        /space/i,
      );
      // A known length larger than what is available is refused before any byte is written.
      await expectJobError(
        'POST',
        '/images',
        { params: { name: 'too-big-2', url: http.url('/files/big.raw'), backupStorageUuids: [bs.uuid] } },
        'SYS.1006',
        /available/,
      );
      assert.equal(await imageRows(), before);
      assert.deepEqual(await filesBelow(small), []);
    } finally {
      await execFileP('umount', [small]);
    }
  });

  test('hashing a copy whose file vanished, or a storage whose directory vanished, is a clear error that changes nothing', async () => {
    const storage2 = join(work, 'storage2');
    await mkdir(storage2);
    const bs2 = (await c.addLocalStorage(storage2, 'vanishing')).uuid;
    const added = await c.call('POST', '/images', {
      params: { name: 'v', url: `file://${join(fixtures, 'ok.raw')}`, backupStorageUuids: [bs2] },
    });
    assert.equal(added.status, 200, added.text);
    const img = added.body.inventory;
    await rm(img.backupStorageRefs[0].installPath);
    await expectJobError(
      'PUT',
      `/images/${img.uuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bs2, algorithm: 'SHA256' } },
      'SYS.1006',
      /cannot hash|not found|no such/i,
    );
    await expectJobError(
      'PUT',
      `/images/${imageUuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bs2 } },
      'SYS.1006',
      /has no copy on backup storage/,
    );
    await rm(storage2, { recursive: true, force: true });
    await expectJobError(
      'PUT',
      `/images/${img.uuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bs2 } },
      'SYS.1006',
      /not Connected/,
    );
    const after = (await c.call('GET', `/images/${img.uuid}`)).body.inventories[0];
    assert.equal(after.md5Sum, img.md5Sum, 'md5Sum unchanged');
    const storages = (await c.call('GET', `/backup-storage/${bs2}`)).body.inventories;
    assert.equal(storages[0].status, 'Disconnected');
    assert.match(storages[0].statusReason, /storage2/);
  });

  test('X-Job-UUID must be 32 characters and unique', async () => {
    const bad = await c.raw('PUT', `/images/${imageUuid}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': 'short' });
    assert.equal(bad.status, 400);
    assert.equal(bad.text, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped");
    const id = randomBytes(16).toString('hex');
    const first = await c.call('PUT', `/images/${imageUuid}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': id });
    assert.equal(first.status, 200);
    const dup = await c.raw('PUT', `/images/${imageUuid}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': id });
    assert.equal(dup.status, 400);
    assert.equal(dup.text, `Duplicate job uuid[${id}]`);
  });

  test('unknown routes and job ids', async () => {
    const route = await c.raw('GET', '/nothing/here');
    assert.equal(route.status, 404);
    assert.equal(route.text, 'no api mapping to /zstack/v1/nothing/here');
    const job = await fetch(`${server.url}/zstack/v1/api-jobs/${'e'.repeat(32)}`);
    assert.equal(job.status, 404);
    assert.equal(await job.text(), 'the job has been expired');
    const post = await fetch(`${server.url}/zstack/v1/api-jobs/${'e'.repeat(32)}`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  test('the server is still up and consistent after all of the above', async () => {
    const res = await c.call('GET', `/images/${imageUuid}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.inventories[0].status, 'Ready');
    const downloading = await c.call('GET', '/images?q=status=Downloading&count=true');
    assert.equal(downloading.body.total, 0);
  });
});
