/**
 * Tags as ZStack clients read and write them: CreateSystemTag, CreateUserTag, QuerySystemTag, QueryUserTag,
 * QueryTag, UpdateSystemTag, DeleteTag; tags set through other APIs (bootMode::…, checksum::…, userTags of a
 * create call) are the same rows; ZStack's rules and error codes. On SQLite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newUuid } from '../src/lib/ids.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { opensslDigest, startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

for (const kind of ['sqlite', 'postgres'] as const)
  describe(`tags on ${kind}`, () => {
    let pgServer: TestPostgres | undefined;
    let server: TestServer;
    let work: string;
    let image: string;
    let bs: string;

    before(async () => {
      work = await tempDir();
      await mkdir(join(work, 'fixtures'));
      await mkdir(join(work, 'bs'));
      const file = join(work, 'fixtures', 'disk.raw');
      await writeFile(file, randomBytes(64 * 1024));
      if (kind === 'postgres') pgServer = await startPostgres();
      server = await startInProcess(pgServer ? { db: pgServer.url } : {}, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
      await server.client.login();
      bs = (await server.client.addLocalStorage(join(work, 'bs'))).uuid;
      const added = await server.client.call('POST', '/images', {
        params: { name: 'disk', url: `file://${file}`, format: 'raw', backupStorageUuids: [bs] },
        systemTags: [`checksum::md5::${await opensslDigest(file, 'md5')}`],
        userTags: ['team::storage'],
      });
      assert.equal(added.status, 200, added.text);
      image = added.body.inventory.uuid;
    });

    after(async () => {
      await server?.stop();
      await pgServer?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('tags set through other APIs are listed with resourceUuid and resourceType', async () => {
      const c = server.client;
      assert.equal((await c.call('PUT', `/images/${image}/actions`, { setImageBootMode: { bootMode: 'UEFI' } })).status, 200);
      const sys = await c.call('GET', `/system-tags?q=resourceUuid=${image}&sort=tag`);
      assert.equal(sys.status, 200, sys.text);
      assert.deepEqual(
        sys.body.inventories.map((t: any) => t.tag),
        ['bootMode::UEFI', sys.body.inventories[1].tag],
      );
      assert.match(sys.body.inventories[1].tag, /^checksum::md5::[0-9a-f]{32}$/);
      const boot = sys.body.inventories[0];
      assert.deepEqual(Object.keys(boot).sort(), [
        'createDate',
        'inherent',
        'lastOpDate',
        'resourceType',
        'resourceUuid',
        'tag',
        'type',
        'uuid',
      ]);
      assert.equal(boot.resourceType, 'ImageVO');
      assert.equal(boot.resourceUuid, image);
      assert.equal(boot.type, 'System');
      assert.equal(boot.inherent, false);

      const user = await c.call('GET', `/user-tags?q=resourceUuid=${image}`);
      assert.deepEqual(
        user.body.inventories.map((t: any) => [t.tag, t.type, t.resourceType]),
        [['team::storage', 'User', 'ImageVO']],
      );
      assert.ok(!('inherent' in user.body.inventories[0]));

      const all = await c.call('GET', `/tags?q=resourceUuid=${image}&replyWithCount=true`);
      assert.equal(all.body.total, 3);
      assert.deepEqual(all.body.inventories.map((t: any) => t.type).sort(), ['System', 'System', 'User']);
      assert.equal((await c.call('GET', `/tags?q=resourceUuid=${image}&q=type=User&count=true`)).body.total, 1);
      assert.equal((await c.call('GET', `/tags/${boot.uuid}`)).body.inventories[0].tag, 'bootMode::UEFI');
      assert.deepEqual((await c.call('GET', `/system-tags?q=tag~=bootMode::%25&fields=tag,resourceUuid`)).body.inventories, [
        { tag: 'bootMode::UEFI', resourceUuid: image },
      ]);
      const bad = await c.call('GET', '/system-tags?q=color=red');
      assert.equal(bad.body.error.code, 'SYS.1007');
      assert.match(bad.body.error.details, /SystemTagInventory/);

      // Tags given with a create call of another resource type.
      const zone = await c.call('POST', '/zones', { params: { name: 'tagged' }, userTags: ['owner::ops'] });
      assert.equal(zone.status, 200, zone.text);
      const zt = await c.call('GET', `/user-tags?q=resourceUuid=${zone.body.inventory.uuid}`);
      assert.deepEqual(
        zt.body.inventories.map((t: any) => [t.tag, t.resourceType]),
        [['owner::ops', 'ZoneVO']],
      );
      await c.call('DELETE', `/zones/${zone.body.inventory.uuid}`);
      assert.deepEqual(
        (await c.call('GET', `/user-tags?q=resourceUuid=${zone.body.inventory.uuid}`)).body.inventories,
        [],
        "a deleted zone's tags go with it",
      );
    });

    test('CreateSystemTag accepts the system tags ZStack defines for the type; CreateUserTag any text once', async () => {
      const c = server.client;
      const created = await c.call('POST', '/system-tags', {
        params: { resourceType: 'BackupStorageVO', resourceUuid: bs, tag: 'extraips::10.0.0.5' },
      });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.body.inventory.tag, 'extraips::10.0.0.5');
      assert.equal(created.body.inventory.inherent, false);
      const dup = await c.call('POST', '/system-tags', {
        params: { resourceType: 'BackupStorageVO', resourceUuid: bs, tag: 'extraips::10.0.0.5' },
      });
      assert.equal(dup.status, 200, 'ZStack does not create a system tag twice and answers without an inventory');
      assert.equal(dup.body.inventory, undefined);
      assert.equal((await c.call('GET', `/system-tags?q=resourceUuid=${bs}&count=true`)).body.total, 1);

      const unknownTag = await c.call('POST', '/system-tags', {
        params: { resourceType: 'ImageVO', resourceUuid: image, tag: 'colour::red' },
      });
      assert.equal(unknownTag.body.error.code, 'SYS.1007');
      assert.equal(unknownTag.body.error.details, 'no system tag matches[colour::red] for resourceType[ImageVO]');
      const unknownType = await c.call('POST', '/system-tags', {
        params: { resourceType: 'VmInstanceVO', resourceUuid: image, tag: 'bootMode::UEFI' },
      });
      assert.equal(unknownType.body.error.details, 'no resource type[VmInstanceVO] found in tag system');
      const mismatch = await c.call('POST', '/system-tags', {
        params: { resourceType: 'BackupStorageVO', resourceUuid: image, tag: 'extraips::1.2.3.4' },
      });
      assert.equal(mismatch.body.error.code, 'SYS.1007');
      assert.equal(mismatch.body.error.details, "The argument :'resourceType' doesn't match uuid");
      const missing = await c.call('POST', '/system-tags', {
        params: { resourceType: 'ImageVO', resourceUuid: newUuid(), tag: 'bootMode::UEFI' },
      });
      assert.equal(missing.body.error.code, 'SYS.1003');
      const noTag = await c.call('POST', '/system-tags', { params: { resourceType: 'ImageVO', resourceUuid: image } });
      assert.equal(noTag.body.error.code, 'SYS.1007');

      const u = await c.call('POST', '/user-tags', { params: { resourceType: 'ImageVO', resourceUuid: image, tag: 'any free text' } });
      assert.equal(u.status, 200, u.text);
      assert.equal(u.body.inventory.type, 'User');
      const udup = await c.call('POST', '/user-tags', { params: { resourceType: 'ImageVO', resourceUuid: image, tag: 'any free text' } });
      assert.equal(udup.body.error.code, 'SYS.1006');
      assert.equal(udup.body.error.details, `Duplicated Tag[tag:any free text, type:User, resourceType:ImageVO, resourceUuid:${image}]`);
      // A user tag is queryable on the resource too (__userTag__).
      assert.equal((await c.call('GET', `/images?q=__userTag__=any free text&count=true`)).body.total, 1);
    });

    test('UpdateSystemTag keeps the tag a system tag of its type', async () => {
      const c = server.client;
      const boot = (await c.call('GET', `/system-tags?q=resourceUuid=${image}&q=tag~=bootMode%25`)).body.inventories[0];
      const upd = await c.call('PUT', `/system-tags/${boot.uuid}/actions`, { updateSystemTag: { tag: 'bootMode::Legacy' } });
      assert.equal(upd.status, 200, upd.text);
      assert.equal(upd.body.inventory.tag, 'bootMode::Legacy');
      assert.equal(upd.body.inventory.uuid, boot.uuid);
      const bad = await c.call('PUT', `/system-tags/${boot.uuid}/actions`, { updateSystemTag: { tag: 'nonsense' } });
      assert.equal(bad.body.error.code, 'SYS.1007');
      assert.equal(bad.body.error.details, 'no system tag matches[nonsense] for resourceType[ImageVO]');
      const userTag = (await c.call('GET', `/user-tags?q=resourceUuid=${image}&limit=1`)).body.inventories[0];
      const notSystem = await c.call('PUT', `/system-tags/${userTag.uuid}/actions`, { updateSystemTag: { tag: 'bootMode::UEFI' } });
      assert.equal(notSystem.body.error.code, 'SYS.1003');
      assert.equal(notSystem.body.error.details, `invalid field[uuid], resource[uuid:${userTag.uuid}, type:SystemTagVO] not found`);
    });

    test('DeleteTag removes system and user tags, never an inherent system tag', async () => {
      const c = server.client;
      const user = (await c.call('GET', `/user-tags?q=resourceUuid=${image}&q=tag=team::storage`)).body.inventories[0];
      assert.equal((await c.call('DELETE', `/tags/${user.uuid}`)).status, 200);
      assert.equal((await c.call('GET', `/tags/${user.uuid}`)).body.inventories.length, 0);
      const sys = (await c.call('GET', `/system-tags?q=resourceUuid=${bs}`)).body.inventories[0];
      assert.equal((await c.call('DELETE', `/tags/${sys.uuid}`)).status, 200);
      assert.equal((await c.call('GET', `/system-tags?q=resourceUuid=${bs}&count=true`)).body.total, 0);
      assert.equal((await c.call('DELETE', `/tags/${newUuid()}`)).status, 200, 'an unknown tag is already deleted');

      // zimage's own APIs create no inherent tags; a row marked inherent (as ZStack's services mark theirs) stays.
      const uuid = newUuid();
      const now = Date.now();
      await server
        .app!.db.db.insertInto('tag')
        .values({
          uuid,
          resource_uuid: image,
          resource_type: 'ImageVO',
          tag: 'CreatedBySystem',
          type: 'System',
          create_date: now,
          last_op_date: now,
          inherent: 1,
        })
        .execute();
      const listed = (await c.call('GET', `/system-tags/${uuid}`)).body.inventories[0];
      assert.equal(listed.inherent, true);
      const refused = await c.call('DELETE', `/tags/${uuid}`);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error.code, 'SYS.1006');
      assert.equal(refused.body.error.details, `tag[uuid:${uuid}] is an inherent system tag, can not be removed`);
      assert.equal((await c.call('GET', `/system-tags?q=inherent=true&count=true`)).body.total, 1);
    });
  });
