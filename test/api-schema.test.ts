/**
 * The `schema` of zimage's real replies against golden data (test/fixtures/schema/golden.json), written
 * down from ZStack's rules (RestServer.writeResponse + JsonSchemaBuilder): one real server on 127.0.0.1
 * with a local, an SFTP (real sshd) and a Ceph storage, images on them, every reply shape the SDKs read.
 * Async calls go through api-jobs (syncWaitMs 0), so the schema persisted with a job result is checked too.
 *
 * The Ceph storage is a row as a connect leaves it (type Ceph, fsid, two monitors, pool numbers): no
 * cluster is started (the Ceph tests own fixed ports); every API used on it here reads the row only.
 */
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { replySchema } from '../src/api/json-schema.js';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { ENUM_FIELDS, INVENTORY_CLASS, withClass } from '../src/lib/inventory-class.js';
import { once } from './helpers/once.js';
import { PASSWORD_USER, startSshd, userDir, type TestSshd } from './helpers/sshd.js';
import { ADMIN_UUID } from '../src/services/accounts.js';
import { ADMIN_WIRE_PASSWORD, tempDir, ZClient } from './helpers/zimage.js';

const golden = JSON.parse(readFileSync(new URL('./fixtures/schema/golden.json', import.meta.url), 'utf8')) as {
  cases: Record<string, { schema: Record<string, string> | null }>;
};
const ASK = { 'X-JSON-Schema': 'true' };

/** What a schema path names in the reply, read as the SDK's ApiResult.getProperty does (a.b[i].c). */
function resolve(body: unknown, path: string): unknown {
  let at: any = body;
  for (const part of path.split('.')) {
    const m = /^(.*)\[(\d+)\]$/.exec(part);
    at = m ? at?.[m[1]!]?.[Number(m[2])] : at?.[part];
  }
  return at;
}

describe('reply schema: real replies against the golden fixtures', () => {
  let sshd: TestSshd;
  let work: string;
  let app: App;
  let c: ZClient;
  const checked = new Set<string>();

  /** The reply's schema equals the golden one, key order included; `null` = no schema key at all. */
  const expect = (name: string, res: { status: number; body: any; text: string }) => {
    const want = golden.cases[name];
    assert.ok(want, `no golden case "${name}"`);
    assert.equal(res.status, 200, `${name}: ${res.text}`);
    checked.add(name);
    if (want.schema === null) {
      assert.equal('schema' in res.body, false, `${name}: no schema expected, got ${JSON.stringify(res.body.schema)}`);
      return;
    }
    assert.deepEqual(res.body.schema, want.schema, name);
    assert.deepEqual(Object.keys(res.body.schema), Object.keys(want.schema), `${name}: key order`);
    for (const p of Object.keys(res.body.schema)) {
      const named = resolve(res.body, p);
      // An enum-typed field is a string on the wire; the SDK reads it as its enum before the schema is applied.
      const isEnum = Object.values(ENUM_FIELDS).some((fields) => Object.values(fields).includes(res.body.schema[p]));
      assert.ok(
        isEnum ? typeof named === 'string' : typeof named === 'object' && named !== null,
        `${name}: ${p} names an object of the reply`,
      );
    }
  };
  const call = (method: string, p: string, body?: unknown, headers?: Record<string, string>) => c.call(method, p, body, headers);

  before(async () => {
    sshd = await startSshd();
    work = await tempDir('zimage-api-schema-');
    await fsp.chmod(work, 0o755);
    const fixtures = path.join(work, 'fixtures');
    await fsp.mkdir(fixtures);
    await fsp.writeFile(path.join(fixtures, 'a.raw'), Buffer.alloc(256 * 1024, 7));
    const dataDir = path.join(work, 'data');
    await fsp.mkdir(dataDir);
    const config = {
      ...loadConfig({ dataDir, port: 0, host: '127.0.0.1' }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures }),
      syncWaitMs: 0,
      pingIntervalSec: 3600,
    };
    app = await startApp(config, pino({ level: 'silent' }));
    c = new ZClient(app.url);
    await c.login();
  });

  after(async () => {
    await app?.stop();
    await sshd?.close();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  /**
   * Each test is a section run once (memoised): a test awaits the sections whose storages or images it uses, and
   * the last test awaits them all, so each test passes alone and the whole file runs every section once.
   */
  const sections: (() => Promise<unknown>)[] = [];
  const section = <T>(name: string, body: () => Promise<T>) => {
    const run = once(body);
    sections.push(run);
    test(name, async () => {
      await run();
    });
    return run;
  };

  section('sessions', async () => {
    const anon = new ZClient(app.url);
    const login = { logInByAccount: { accountName: 'admin', password: ADMIN_WIRE_PASSWORD } };
    const asked = await anon.call('PUT', '/accounts/login', login, ASK);
    expect('LogInByAccount, X-JSON-Schema', asked);
    expect('LogInByAccount, no header', await anon.call('PUT', '/accounts/login', login));
    const session = asked.body.inventory.uuid as string;
    expect('RenewSession, X-JSON-Schema', await anon.call('PUT', `/accounts/sessions/${session}/renew`, { renewSession: {} }, ASK));
    expect('ValidateSession, X-JSON-Schema', await anon.call('GET', `/accounts/sessions/${session}/valid`, undefined, ASK));
  });

  const storages = section('storages: local, SFTP and Ceph, typed in every reply', async () => {
    const res = await call(
      'POST',
      '/backup-storage/local',
      { params: { name: 'local', url: await userDir(path.join(work, 'local')) } },
      ASK,
    );
    expect('AddLocalBackupStorage, X-JSON-Schema', res);
    const local = res.body.inventory.uuid as string;

    const sftpAdd = await call(
      'POST',
      '/backup-storage/sftp',
      {
        params: {
          name: 'sftp',
          hostname: '127.0.0.1',
          sshPort: sshd.port,
          username: PASSWORD_USER,
          privateKey: sshd.clientKey,
          url: await userDir(path.join(work, 'sftp')),
        },
      },
      ASK,
    );
    expect('AddSftpBackupStorage, X-JSON-Schema', sftpAdd);
    const sftp = sftpAdd.body.inventory.uuid as string;
    assert.equal(sftpAdd.body.inventory.password, undefined);
    expect(
      'UpdateSftpBackupStorage, X-JSON-Schema',
      await call('PUT', `/backup-storage/sftp/${sftp}/actions`, { updateSftpBackupStorage: { description: 'd' } }, ASK),
    );
    expect(
      'UpdateBackupStorage on SFTP, X-JSON-Schema',
      await call('PUT', `/backup-storage/${sftp}/actions`, { updateBackupStorage: { name: 'sftp' } }, ASK),
    );
    expect(
      'ChangeBackupStorageState on SFTP, X-JSON-Schema',
      await call('PUT', `/backup-storage/${sftp}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } }, ASK),
    );
    expect(
      'ReconnectSftpBackupStorage, X-JSON-Schema',
      await call('PUT', `/backup-storage/sftp/${sftp}/actions`, { reconnectSftpBackupStorage: {} }, ASK),
    );
    expect(
      'ReconnectBackupStorage on SFTP, X-JSON-Schema',
      await call('PUT', `/backup-storage/${sftp}/actions`, { reconnectBackupStorage: {} }, ASK),
    );
    expect(
      'UpdateBackupStorage on local, X-JSON-Schema',
      await call('PUT', `/backup-storage/${local}/actions`, { updateBackupStorage: { description: 'x' } }, ASK),
    );

    // The Ceph row, as AddCephBackupStorage and a connect leave it.
    const cephDir = await userDir(path.join(work, 'ceph'));
    const ceph = (await c.addLocalStorage(cephDir, 'ceph')).uuid as string;
    await app.db.db.updateTable('backup_storage').set({ type: 'Ceph', url: 'ceph://rbd' }).where('uuid', '=', ceph).execute();
    const mon = (ip: string, uuid: string) => ({ uuid, monAddr: ip, hostname: ip, monPort: 6789, status: 'Connected' });
    await app.services.backupStorage.update(ceph, {
      config: {
        monUrls: ['192.0.2.10', '192.0.2.11'],
        poolName: 'rbd',
        fsid: '0f9a6b9e-3c1d-4c1e-9f3a-2b7d5e8c1a40',
        mons: [mon('192.0.2.10', 'c'.repeat(32)), mon('192.0.2.11', 'd'.repeat(32))],
        pool: { availableCapacity: 1 << 30, usedCapacity: 1 << 20, replicatedSize: 3 },
      },
    });
    const changed = await call('PUT', `/backup-storage/${ceph}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } }, ASK);
    expect('ChangeBackupStorageState on Ceph, X-JSON-Schema', changed);
    const inv = changed.body.inventory;
    assert.deepEqual(
      inv.mons.map((m: any) => [m.monUuid, m.monAddr, m.hostname, m.monPort, m.status, m.backupStorageUuid]),
      [
        ['c'.repeat(32), '192.0.2.10', '192.0.2.10', 6789, 'Connected', ceph],
        ['d'.repeat(32), '192.0.2.11', '192.0.2.11', 6789, 'Connected', ceph],
      ],
    );
    assert.equal(inv.mons[0].createDate, inv.createDate);
    assert.deepEqual([inv.poolName, inv.poolReplicatedSize, inv.poolSecurityPolicy, inv.poolDiskUtilization], ['rbd', 3, 'Copy', 0.33]);
    expect(
      'UpdateBackupStorage on Ceph, X-JSON-Schema',
      await call('PUT', `/backup-storage/${ceph}/actions`, { updateBackupStorage: { description: 'c' } }, ASK),
    );
    return { local, sftp, ceph };
  });

  section('backup-storage queries and candidates', async () => {
    const { local, sftp, ceph } = await storages();
    const all = await call('GET', '/backup-storage');
    expect('QueryBackupStorage, local + SFTP + Ceph', all);
    assert.deepEqual(
      all.body.inventories.map((b: any) => b.uuid),
      [local, sftp, ceph],
    );
    expect('QueryBackupStorage fields=uuid,name', await call('GET', '/backup-storage?fields=uuid,name'));
    expect('QueryBackupStorage matching nothing', await call('GET', '/backup-storage?q=name=nothing'));
    expect('QueryBackupStorage count=true', await call('GET', '/backup-storage?count=true'));
    expect('QueryLocalBackupStorage', await call('GET', '/backup-storage/local'));
    expect('QuerySftpBackupStorage', await call('GET', '/backup-storage/sftp'));
    const projected = await call('GET', '/backup-storage/sftp?fields=uuid,hostname');
    expect('QuerySftpBackupStorage fields=uuid,hostname', projected);
    assert.deepEqual(projected.body.inventories, [{ uuid: sftp, hostname: '127.0.0.1' }]);
    expect('QueryCephBackupStorage', await call('GET', '/backup-storage/ceph'));
    expect('QueryCephBackupStorage/{uuid}', await call('GET', `/backup-storage/ceph/${ceph}`));
    const candidates = await call('GET', '/images/candidate-backup-storage', undefined, ASK);
    expect('GetCandidateBackupStorageForCreatingImage, X-JSON-Schema', candidates);
    assert.deepEqual(
      candidates.body.inventories.map((b: any) => b.uuid),
      [local, sftp, ceph],
    );
    expect('GetCandidateBackupStorageForCreatingImage, no header', await call('GET', '/images/candidate-backup-storage'));
    expect('GetBackupStorageTypes, X-JSON-Schema', await call('GET', '/backup-storage/types', undefined, ASK));
  });

  const imageReplies = section('images: empty, one, several, nested refs, projection, paging', async () => {
    const { local, sftp } = await storages();
    const images: Record<string, string> = {};
    const url = `file://${path.join(work, 'fixtures', 'a.raw')}`;
    expect('QueryImage matching nothing', await call('GET', '/images?q=name=nothing'));
    const add = async (name: string, bs: string[], headers?: Record<string, string>) => {
      const res = await call('POST', '/images', { params: { name, url, format: 'raw', backupStorageUuids: bs } }, headers);
      assert.equal(res.status, 200, res.text);
      images[name] = res.body.inventory.uuid;
      return res;
    };
    await add('a', [local]);
    expect('AddImage on local + SFTP, X-JSON-Schema', await add('b', [local, sftp], ASK));
    await add('c', [sftp]);
    expect('QueryImage count=true', await call('GET', '/images?count=true'));
    expect('QueryImage one image, one copy', await call('GET', '/images?q=name=a'));
    const several = await call('GET', '/images');
    expect('QueryImage several images', several);
    assert.deepEqual(
      several.body.inventories.map((i: any) => [i.name, i.backupStorageRefs.length]),
      [
        ['a', 1],
        ['b', 2],
        ['c', 1],
      ],
    );
    expect('QueryImage fields=uuid,name', await call('GET', '/images?fields=uuid,name'));
    expect('QueryImage limit=1 start=1', await call('GET', '/images?limit=1&start=1'));
    expect('QueryImage/{uuid} of an unknown uuid', await call('GET', `/images/${'e'.repeat(32)}`));
    expect('SyncImageSize, X-JSON-Schema', await call('PUT', `/images/${images.b}/actions`, { syncImageSize: {} }, ASK));
    expect('SyncImageSize, no header', await call('PUT', `/images/${images.b}/actions`, { syncImageSize: {} }));
    return images;
  });

  section('task progress, upload job details, empty replies', async () => {
    const images = await imageReplies();
    const { local } = await storages();
    const job = 'f'.repeat(32);
    const sync = await call('PUT', `/images/${images.a}/actions`, { syncImageSize: {} }, { 'X-Job-UUID': job });
    assert.equal(sync.status, 200, sync.text);
    expect('GetTaskProgress of a finished job, X-JSON-Schema', await call('GET', `/task-progresses/${job}`, undefined, ASK));
    expect('GetTaskProgress of an unknown job, X-JSON-Schema', await call('GET', `/task-progresses/${'0'.repeat(32)}`, undefined, ASK));

    const upload = await call('POST', '/images', { params: { name: 'up', url: 'upload://up', backupStorageUuids: [local] } });
    assert.equal(upload.status, 200, upload.text);
    const details = await call('GET', `/images/upload-job/details/${upload.body.inventory.uuid}`, undefined, ASK);
    expect('GetUploadImageJobDetails, X-JSON-Schema', details);
    expect(
      'GetUploadImageJobDetails of an image without upload, X-JSON-Schema',
      await call('GET', `/images/upload-job/details/${images.a}`, undefined, ASK),
    );
    expect('DeleteImage, X-JSON-Schema', await call('DELETE', `/images/${images.c}`, undefined, ASK));
  });

  section('access keys, zones and tags', async () => {
    const { local, sftp } = await storages();
    const account = ADMIN_UUID;
    const key = await call('POST', '/accesskeys', { params: { accountUuid: account, userUuid: account } }, ASK);
    expect('CreateAccessKey, X-JSON-Schema', key);
    await call('POST', '/accesskeys', { params: { accountUuid: account, userUuid: account } });
    expect('QueryAccessKey, two keys', await call('GET', '/accesskeys'));
    expect(
      'QueryAccessKey fields=uuid,AccessKeyID',
      await call('GET', `/accesskeys?q=uuid=${key.body.inventory.uuid}&fields=uuid,AccessKeyID`),
    );
    const keyUuid = key.body.inventory.uuid as string;
    expect(
      'ChangeAccessKeyState, X-JSON-Schema',
      await call('PUT', `/accesskeys/${keyUuid}/actions`, { changeAccessKeyState: { stateEvent: 'disable' } }, ASK),
    );
    expect('DeleteAccessKey, X-JSON-Schema', await call('DELETE', `/accesskeys/${keyUuid}`, undefined, ASK));

    const zone = await call('POST', '/zones', { params: { name: 'schema-zone' } }, ASK);
    expect('CreateZone, X-JSON-Schema', zone);
    await call('POST', '/zones', { params: { name: 'schema-zone-2' } });
    expect('QueryZone, two zones', await call('GET', '/zones?q=name~=schema-zone%25'));
    expect('QueryZone matching nothing', await call('GET', '/zones?q=name=nothing'));
    const z = zone.body.inventory.uuid as string;
    expect(
      'AttachBackupStorageToZone on SFTP, X-JSON-Schema',
      await call('POST', `/zones/${z}/backup-storage/${sftp}`, { params: {} }, ASK),
    );
    expect('QueryBackupStorage by zone.uuid', await call('GET', `/backup-storage?q=zone.uuid=${z}`));
    await call('POST', `/zones/${z}/backup-storage/${local}`, { params: {} });
    expect(
      'DetachBackupStorageFromZone on local, X-JSON-Schema',
      await call('DELETE', `/zones/${z}/backup-storage/${local}`, undefined, ASK),
    );

    const tag = { resourceType: 'ZoneVO', resourceUuid: z, tag: 'host::reservedCpu::1' };
    const sys = await call('POST', '/system-tags', { params: tag }, ASK);
    expect('CreateSystemTag, X-JSON-Schema', sys);
    expect('CreateSystemTag of a tag the resource has, X-JSON-Schema', await call('POST', '/system-tags', { params: tag }, ASK));
    await call('POST', '/system-tags', { params: { ...tag, tag: 'host::reservedMemory::1G' } });
    expect('CreateUserTag, X-JSON-Schema', await call('POST', '/user-tags', { params: { ...tag, tag: 'schema user tag' } }, ASK));
    expect(
      'UpdateSystemTag, X-JSON-Schema',
      await call('PUT', `/system-tags/${sys.body.inventory.uuid}/actions`, { updateSystemTag: { tag: 'host::reservedCpu::2' } }, ASK),
    );
    expect('QuerySystemTag, two tags', await call('GET', `/system-tags?q=resourceUuid=${z}`));
    expect('QueryUserTag, one tag', await call('GET', `/user-tags?q=resourceUuid=${z}`));
    expect('QueryTag, system and user', await call('GET', `/tags?q=resourceUuid=${z}`));
  });

  test('every golden case was checked against a real reply', async () => {
    for (const run of sections) await run(); // alone, this runs every section; after them, each is done already
    assert.deepEqual(
      Object.keys(golden.cases).filter((name) => !checked.has(name)),
      [],
    );
  });
});

describe('reply schema walker (unit)', () => {
  const cls = (name: string) => `org.zstack.test.${name}`;

  test('map values are field.key, nested lists every index, nulls and empty lists nothing, parents first', () => {
    const leaf = (n: number) => withClass(cls('Leaf'), { n });
    const reply = {
      total: 3,
      note: 'plain',
      types: ['a', 'b'],
      plainMap: { x: leaf(1) },
      inventory: withClass(cls('Root'), {
        name: 'r',
        none: null,
        empty: [],
        numbers: [1, 2],
        leaves: [leaf(1), leaf(2)],
        byName: { first: leaf(3), second: 'not an inventory' },
        child: withClass(cls('Child'), { deep: [leaf(4)] }),
      }),
    };
    const schema = replySchema(reply);
    assert.deepEqual(Object.entries(schema), [
      ['inventory', cls('Root')],
      ['inventory.child', cls('Child')],
      ['inventory.child.deep[0]', cls('Leaf')],
      ['inventory.byName.first', cls('Leaf')],
      ['inventory.leaves[1]', cls('Leaf')],
      ['inventory.leaves[0]', cls('Leaf')],
    ]);
  });

  test('an untagged element keeps its index free: later tagged elements keep their own index', () => {
    const schema = replySchema({ inventories: [{ plain: true }, withClass(INVENTORY_CLASS.image, { uuid: 'x' })] });
    assert.deepEqual(schema, { 'inventories[1]': INVENTORY_CLASS.image });
  });

  test('a reply with a schema key already is not described by it', () => {
    assert.deepEqual(replySchema({ schema: { a: 'b' }, inventory: withClass(INVENTORY_CLASS.session, {}) }), {
      inventory: INVENTORY_CLASS.session,
    });
  });
});
