/**
 * The same API flow on both databases zimage supports: embedded SQLite and a real PostgreSQL server.
 * Checks rows, query filters on nested fields, paging and the digest records.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { opensslDigest, startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`API flow on ${kind}`, () => {
    let pgServer: TestPostgres | undefined;
    let server: TestServer;
    let work: string;
    const bs: string[] = [];

    before(async () => {
      work = await tempDir();
      await mkdir(join(work, 'fixtures'));
      for (let i = 0; i < 3; i++) await writeFile(join(work, 'fixtures', `img${i}.raw`), randomBytes(1024 * 1024 + i * 4096));
      let db: string | undefined;
      if (kind === 'postgres') {
        pgServer = await startPostgres();
        db = pgServer.url;
      }
      server = await startInProcess(db ? { db } : {}, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
      await server.client.login();
      for (const n of ['a', 'b']) {
        await mkdir(join(work, n));
        bs.push((await server.client.addLocalStorage(join(work, n), `bs-${n}`)).uuid);
      }
    });

    after(async () => {
      await server?.stop();
      await pgServer?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('images on one and on two storages, queried by nested fields, sorted and paged', async () => {
      const c = server.client;
      const uuids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await c.call('POST', '/images', {
          params: { name: `img-${i}`, url: `file://${join(work, 'fixtures', `img${i}.raw`)}`, backupStorageUuids: i === 2 ? bs : [bs[0]] },
          systemTags: [`applianceType::tier${i}`],
        });
        assert.equal(res.status, 200, res.text);
        uuids.push(res.body.inventory.uuid);
        assert.equal(res.body.inventory.md5Sum, await opensslDigest(join(work, 'fixtures', `img${i}.raw`), 'md5'));
      }
      const onB = await c.call('GET', `/images?q=backupStorageRefs.backupStorageUuid=${bs[1]}`);
      assert.deepEqual(
        onB.body.inventories.map((i: any) => i.uuid),
        [uuids[2]],
      );
      assert.equal(onB.body.inventories[0].backupStorageRefs.length, 2);
      const alias = await c.call('GET', `/images?q=backupStorage.name=bs-a&count=true`);
      assert.equal(alias.body.total, 3);
      const sorted = await c.call('GET', '/images?sort=-size&limit=2&replyWithCount=true');
      assert.deepEqual(
        sorted.body.inventories.map((i: any) => i.name),
        ['img-2', 'img-1'],
      );
      assert.equal(sorted.body.total, 3);
      const inList = await c.call('GET', `/images?q=name?=img-0,img-2&fields=uuid,name`);
      assert.deepEqual(
        inList.body.inventories.map((i: any) => Object.keys(i).sort()),
        [
          ['name', 'uuid'],
          ['name', 'uuid'],
        ],
      );
      const like = await c.call('GET', '/images?q=name~=img-%25&q=size>1048576');
      assert.equal(like.body.inventories.length, 2);
      const tag = await c.call('GET', '/images?q=__systemTag__=applianceType::tier1');
      assert.deepEqual(
        tag.body.inventories.map((i: any) => i.uuid),
        [uuids[1]],
      );
      const nullCheck = await c.call('GET', '/images?q=description is null&count=true');
      assert.equal(nullCheck.body.total, 3);
      const injection = await c.call('GET', `/images?q=${encodeURIComponent("name=x' or 1=1 --")}`);
      assert.deepEqual(injection.body.inventories, []);
      const badField = await c.call('GET', '/images?q=nosuch=1');
      assert.equal(badField.status, 503);
      assert.equal(badField.body.error.code, 'SYS.1007');
      assert.equal(
        badField.body.error.details,
        'condition name[nosuch] is invalid, no such field on inventory class[org.zstack.header.image.ImageInventory]',
      );
      // An operator inside a value is parsed as ZStack does: the first operator of the list found wins.
      const opInValue = await c.call('GET', `/images?q=${encodeURIComponent('name=a!=b')}`);
      assert.equal(opInValue.status, 503);
      assert.match(opInValue.body.error.details, /condition name\[name=a\] is invalid/);
      const noOp = await c.raw('GET', '/images?q=name');
      assert.equal(noOp.status, 400);
      assert.match(noOp.text, /doesn't contain any query operator/);
    });

    test('every digest is recorded per (image, storage, algorithm)', async () => {
      const c = server.client;
      const img = (await c.call('GET', '/images?q=name=img-2')).body.inventories[0];
      for (const b of bs) {
        const res = await c.call('PUT', `/images/${img.uuid}/actions`, {
          calculateImageHash: { backupStorageUuid: b, algorithm: 'sha512' },
        });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body.digestConflicts, undefined);
      }
      const digests = (await c.call('GET', `/images/${img.uuid}/digests`)).body.inventories;
      const expected = {
        MD5: await opensslDigest(join(work, 'fixtures', 'img2.raw'), 'md5'),
        SHA256: await opensslDigest(join(work, 'fixtures', 'img2.raw'), 'sha256'),
        SHA512: await opensslDigest(join(work, 'fixtures', 'img2.raw'), 'sha512'),
      };
      assert.equal(digests.length, 6);
      for (const d of digests)
        assert.equal(d.digest, expected[d.algorithm as keyof typeof expected], `${d.algorithm} on ${d.backupStorageUuid}`);
      const rows = await server.app!.db.db.selectFrom('image_digest').selectAll().where('image_uuid', '=', img.uuid).execute();
      assert.equal(rows.length, 6);
      assert.deepEqual(new Set(rows.map((r) => r.source)), new Set(['import', 'calculate']));
    });

    test('SyncImageSize measures every copy; copies that disagree are named', async () => {
      const c = server.client;
      const img = (await c.call('GET', '/images?q=name=img-2')).body.inventories[0];
      const ok = await c.call('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} });
      assert.equal(ok.status, 200, ok.text);
      const second = img.backupStorageRefs.find((r: any) => r.backupStorageUuid === bs[1]).installPath;
      await writeFile(second, randomBytes(3 * 1024 * 1024));
      const bad = await c.call('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} });
      assert.equal(bad.status, 503);
      assert.equal(bad.body.error.code, 'SYS.1006');
      assert.match(bad.body.error.details, /disagree/);
      assert.match(bad.body.error.details, /bs-a\(uuid:/);
      assert.match(bad.body.error.details, /bs-b\(uuid:.*virtual size 3145728/);
      const unchanged = (await c.call('GET', `/images/${img.uuid}`)).body.inventories[0];
      assert.equal(unchanged.size, img.size);
      // Hashing the altered copy reports that it disagrees with the other copy's recorded digest.
      const hash = await c.call('PUT', `/images/${img.uuid}/actions`, {
        calculateImageHash: { backupStorageUuid: bs[1], algorithm: 'MD5' },
      });
      assert.equal(hash.status, 200, hash.text);
      assert.equal(hash.body.inventory.md5Sum, await opensslDigest(second, 'md5'));
      assert.deepEqual(
        hash.body.digestConflicts.map((d: any) => [d.backupStorageUuid, d.algorithm, d.digest]),
        [[bs[0], 'MD5', await opensslDigest(join(work, 'fixtures', 'img2.raw'), 'md5')]],
      );
    });
  });
}
