/**
 * Zones as ZStack clients use them: in zimage a zone groups backup storages and nothing more.
 * CreateZone, QueryZone, UpdateZone, ChangeZoneState, DeleteZone, AttachBackupStorageToZone,
 * DetachBackupStorageFromZone; attachedZoneUuids in storage inventories and queries. The same flow runs
 * on SQLite and on a real PostgreSQL (migrations included).
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newUuid } from '../src/lib/ids.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { startInProcess, tempDir, type TestServer } from './helpers/zimage.js';

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`zones on ${kind}`, () => {
    let pgServer: TestPostgres | undefined;
    let server: TestServer;
    let work: string;
    const bs: string[] = [];

    before(async () => {
      work = await tempDir();
      if (kind === 'postgres') pgServer = await startPostgres();
      server = await startInProcess(pgServer ? { db: pgServer.url } : {});
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

    const zone = async (params: Record<string, unknown>) => {
      const res = await server.client.call('POST', '/zones', { params });
      assert.equal(res.status, 200, res.text);
      return res.body.inventory;
    };

    test('CreateZone, QueryZone, UpdateZone, ChangeZoneState; one default zone at most', async () => {
      const c = server.client;
      const z1 = await zone({ name: 'zone-1', description: 'first' });
      assert.deepEqual(Object.keys(z1).sort(), ['createDate', 'description', 'isDefault', 'lastOpDate', 'name', 'state', 'type', 'uuid']);
      assert.equal(z1.state, 'Enabled');
      assert.equal(z1.type, 'zstack');
      assert.equal(z1.isDefault, false);
      const z2 = await zone({ name: 'zone (2)', isDefault: true });
      assert.equal(z2.isDefault, true);

      const byName = await c.call('GET', '/zones?q=name=zone-1');
      assert.deepEqual(
        byName.body.inventories.map((z: any) => z.uuid),
        [z1.uuid],
      );
      assert.equal((await c.call('GET', '/zones?q=isDefault=true&count=true')).body.total, 1);
      assert.equal((await c.call('GET', `/zones/${z2.uuid}`)).body.inventories[0].name, 'zone (2)');
      const sorted = await c.call('GET', '/zones?sort=-createDate&fields=uuid,name&q=name~=zone%');
      assert.deepEqual(sorted.body.inventories, [
        { uuid: z2.uuid, name: 'zone (2)' },
        { uuid: z1.uuid, name: 'zone-1' },
      ]);

      const upd = await c.call('PUT', `/zones/${z1.uuid}/actions`, {
        updateZone: { name: 'zone-one', description: 'renamed', isDefault: true },
      });
      assert.equal(upd.status, 200, upd.text);
      assert.equal(upd.body.inventory.name, 'zone-one');
      assert.equal(upd.body.inventory.isDefault, true);
      assert.equal((await c.call('GET', `/zones/${z2.uuid}`)).body.inventories[0].isDefault, false, 'the default mark moved');

      const off = await c.call('PUT', `/zones/${z1.uuid}/actions`, { changeZoneState: { stateEvent: 'disable' } });
      assert.equal(off.body.inventory.state, 'Disabled');
      const on = await c.call('PUT', `/zones/${z1.uuid}/actions`, { changeZoneState: { stateEvent: 'enable' } });
      assert.equal(on.body.inventory.state, 'Enabled');

      const blank = await c.call('POST', '/zones', { params: { name: ' leading blank' } });
      assert.equal(blank.body.error.code, 'SYS.1007');
      assert.match(
        blank.body.error.details,
        /^valid regex value for field\[name\] of message\[org\.zstack\.header\.zone\.APICreateZoneMsg\]/,
      );
      const slash = await c.call('PUT', `/zones/${z1.uuid}/actions`, { updateZone: { name: 'a/b' } });
      assert.equal(slash.body.error.code, 'SYS.1007');
      const badState = await c.call('PUT', `/zones/${z1.uuid}/actions`, { changeZoneState: { stateEvent: 'maintain' } });
      assert.equal(badState.body.error.code, 'SYS.1007');
      const unknown = await c.call('PUT', `/zones/${newUuid()}/actions`, { updateZone: { name: 'x' } });
      assert.equal(unknown.body.error.code, 'SYS.1003');
      await c.call('DELETE', `/zones/${z1.uuid}`);
      await c.call('DELETE', `/zones/${z2.uuid}`);
    });

    test('attach and detach backup storage; attachedZoneUuids in inventories and queries', async () => {
      const c = server.client;
      const za = await zone({ name: 'za' });
      const zb = await zone({ name: 'zb' });
      const attach = await c.call('POST', `/zones/${za.uuid}/backup-storage/${bs[0]}`, { params: {} });
      assert.equal(attach.status, 200, attach.text);
      assert.equal(attach.body.inventory.uuid, bs[0]);
      assert.deepEqual(attach.body.inventory.attachedZoneUuids, [za.uuid]);
      await c.call('POST', `/zones/${zb.uuid}/backup-storage/${bs[0]}`, { params: {} });
      await c.call('POST', `/zones/${zb.uuid}/backup-storage/${bs[1]}`);

      const twice = await c.call('POST', `/zones/${za.uuid}/backup-storage/${bs[0]}`, { params: {} });
      assert.equal(twice.status, 503);
      assert.equal(twice.body.error.code, 'SYS.1006');
      assert.equal(twice.body.error.details, `backup storage[uuid:${bs[0]}] has been attached to zone[uuid:${za.uuid}]`);
      const noZone = await c.call('POST', `/zones/${newUuid()}/backup-storage/${bs[0]}`, { params: {} });
      assert.equal(noZone.body.error.code, 'SYS.1003');
      assert.match(noZone.body.error.details, /invalid field\[zoneUuid\].*type:ZoneVO\] not found/);
      const noBs = await c.call('POST', `/zones/${za.uuid}/backup-storage/${newUuid()}`, { params: {} });
      assert.equal(noBs.body.error.code, 'SYS.1003');
      assert.match(noBs.body.error.details, /invalid field\[backupStorageUuid\].*type:BackupStorageVO\] not found/);

      const inZb = await c.call('GET', `/backup-storage?q=attachedZoneUuids=${zb.uuid}&sort=name`);
      assert.deepEqual(
        inZb.body.inventories.map((b: any) => b.uuid),
        bs,
      );
      assert.deepEqual(inZb.body.inventories[0].attachedZoneUuids, [za.uuid, zb.uuid]);
      const inZa = await c.call('GET', `/backup-storage?q=zone.uuid=${za.uuid}`);
      assert.deepEqual(
        inZa.body.inventories.map((b: any) => b.uuid),
        [bs[0]],
      );
      assert.equal((await c.call('GET', `/backup-storage?q=zone.name=zb&count=true`)).body.total, 2);
      assert.equal((await c.call('GET', `/backup-storage?q=attachedZoneUuids?=${za.uuid},${newUuid()}&count=true`)).body.total, 1);
      assert.deepEqual((await c.call('GET', `/backup-storage/local/${bs[1]}`)).body.inventories[0].attachedZoneUuids, [zb.uuid]);
      const state = await c.call('PUT', `/backup-storage/${bs[1]}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } });
      assert.deepEqual(state.body.inventory.attachedZoneUuids, [zb.uuid], 'every storage reply carries its zones');

      const detach = await c.call('DELETE', `/zones/${za.uuid}/backup-storage/${bs[0]}`);
      assert.equal(detach.status, 200, detach.text);
      assert.deepEqual(detach.body.inventory.attachedZoneUuids, [zb.uuid]);
      const again = await c.call('DELETE', `/zones/${za.uuid}/backup-storage/${bs[0]}`);
      assert.equal(again.body.error.code, 'SYS.1006');
      assert.equal(again.body.error.details, `backup storage[uuid:${bs[0]}] has not been attached to zone[uuid:${za.uuid}]`);

      // DeleteZone detaches its storages (they stay) and is idempotent.
      const del = await c.call('DELETE', `/zones/${zb.uuid}`);
      assert.equal(del.status, 200, del.text);
      assert.deepEqual((await c.call('GET', `/zones/${zb.uuid}`)).body.inventories, []);
      const left = await c.call('GET', '/backup-storage?sort=name');
      assert.deepEqual(
        left.body.inventories.map((b: any) => [b.uuid, b.attachedZoneUuids]),
        bs.map((u) => [u, []]),
      );
      assert.equal((await c.call('DELETE', `/zones/${zb.uuid}`)).status, 200);
      const rows = await server.app!.db.db.selectFrom('backup_storage_zone_ref').selectAll().execute();
      assert.deepEqual(rows, []);
      await c.call('DELETE', `/zones/${za.uuid}`);
    });

    test('a deleted backup storage leaves no zone reference behind', async () => {
      const c = server.client;
      const z = await zone({ name: 'zc' });
      await mkdir(join(work, 'c'));
      const extra = (await c.addLocalStorage(join(work, 'c'), 'bs-c')).uuid;
      assert.equal((await c.call('POST', `/zones/${z.uuid}/backup-storage/${extra}`, { params: {} })).status, 200);
      assert.equal((await c.call('DELETE', `/backup-storage/${extra}`)).status, 200);
      const rows = await server.app!.db.db.selectFrom('backup_storage_zone_ref').selectAll().where('zone_uuid', '=', z.uuid).execute();
      assert.deepEqual(rows, []);
      await c.call('DELETE', `/zones/${z.uuid}`);
    });
  });
}
