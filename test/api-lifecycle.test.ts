/**
 * The image lifecycle (delete under Direct / Delay / Never, expunge, recover, state, update, boot mode),
 * the backup-storage APIs, the expunger, the ping, and web hooks — over real HTTP, with bytes on disk checked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFileP, startInProcess, tempDir, ZClient } from './helpers/zimage.js';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

async function setup(env: NodeJS.ProcessEnv = {}, overrides = {}) {
  const work = await tempDir();
  await mkdir(join(work, 'fixtures'));
  await writeFile(join(work, 'fixtures', 'a.raw'), randomBytes(1024 * 1024));
  const server = await startInProcess(overrides, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures'), ...env });
  await server.client.login();
  const storages: string[] = [];
  for (const n of ['one', 'two']) {
    await mkdir(join(work, n));
    storages.push((await server.client.addLocalStorage(join(work, n), `bs-${n}`)).uuid);
  }
  const add = async (name: string, bs = storages) => {
    const res = await server.client.call('POST', '/images', {
      params: { name, url: `file://${join(work, 'fixtures', 'a.raw')}`, backupStorageUuids: bs },
    });
    assert.equal(res.status, 200, res.text);
    return res.body.inventory;
  };
  return {
    work,
    server,
    c: server.client,
    storages,
    add,
    stop: async () => {
      await server.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}

const get = async (c: ZClient, uuid: string) => (await c.call('GET', `/images/${uuid}`)).body.inventories[0];

describe('image lifecycle, Delay policy (default)', () => {
  let t: Awaited<ReturnType<typeof setup>>;
  before(async () => {
    t = await setup();
  });
  after(() => t.stop());

  test('delete marks Deleted and keeps bytes; recover brings it back; expunge removes bytes and rows', async () => {
    const img = await t.add('delay');
    const paths = img.backupStorageRefs.map((r: any) => r.installPath);
    const del = await t.c.call('DELETE', `/images/${img.uuid}`);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.body, {});
    const now = await get(t.c, img.uuid);
    assert.equal(now.status, 'Deleted');
    assert.ok(now.backupStorageRefs.every((r: any) => r.status === 'Deleted'));
    for (const p of paths) assert.ok(await exists(p));
    // ImageBase has no status check for ChangeImageState: a Deleted image changes state too.
    const state = await t.c.call('PUT', `/images/${img.uuid}/actions`, { changeImageState: { stateEvent: 'disable' } });
    assert.equal(state.status, 200, state.text);
    assert.equal(state.body.inventory.state, 'Disabled');
    const rec = await t.c.call('PUT', `/images/${img.uuid}/actions`, { recoverImage: {} });
    assert.equal(rec.status, 200, rec.text);
    assert.equal(rec.body.inventory.status, 'Ready');
    assert.ok(rec.body.inventory.backupStorageRefs.every((r: any) => r.status === 'Ready'));
    const again = await t.c.call('PUT', `/images/${img.uuid}/actions`, { recoverImage: {} });
    assert.equal(again.status, 503);
    assert.equal(again.body.error.code, 'SYS.1006');
    assert.equal(again.body.error.details, `the image[uuid:${img.uuid}, name:delay] is not deleted on any backup storage`);
    const early = await t.c.call('PUT', `/images/${img.uuid}/actions`, { expungeImage: {} });
    assert.equal(early.status, 503);
    assert.equal(early.body.error.code, 'SYS.1006');
    assert.equal(early.body.error.details, `the image[uuid:${img.uuid}, name:delay] is not deleted on any backup storage`);
    await t.c.call('DELETE', `/images/${img.uuid}`);
    const exp = await t.c.call('PUT', `/images/${img.uuid}/actions`, { expungeImage: {} });
    assert.equal(exp.status, 200, exp.text);
    assert.equal(await get(t.c, img.uuid), undefined);
    for (const p of paths) assert.equal(await exists(p), false);
    const digests = await t.server.app!.db.db.selectFrom('image_digest').selectAll().where('image_uuid', '=', img.uuid).execute();
    assert.deepEqual(digests, []);
  });

  test('deleting one copy keeps the image Ready on the other', async () => {
    const img = await t.add('partial');
    const res = await t.c.call('DELETE', `/images/${img.uuid}?backupStorageUuids=${t.storages[1]}`);
    assert.equal(res.status, 200, res.text);
    const now = await get(t.c, img.uuid);
    assert.equal(now.status, 'Ready');
    const byBs = Object.fromEntries(now.backupStorageRefs.map((r: any) => [r.backupStorageUuid, r.status]));
    assert.deepEqual(byBs, { [t.storages[0]!]: 'Ready', [t.storages[1]!]: 'Deleted' });
    const sync = await t.c.call('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} });
    assert.equal(sync.status, 200, 'the Deleted copy is not measured');
  });

  test('a well-formed unknown uuid deletes fine; a malformed one is SYS.1003', async () => {
    const ok = await t.c.call('DELETE', `/images/${'1'.repeat(12)}4${'1'.repeat(3)}8${'1'.repeat(15)}`);
    assert.equal(ok.status, 200, ok.text);
    const bad = await t.c.call('DELETE', '/images/not-a-uuid');
    assert.equal(bad.status, 503);
    assert.equal(bad.body.error.code, 'SYS.1003');
    assert.equal(bad.body.error.details, 'invalid value[not-a-uuid] of field [uuid]');
  });

  test('state, update and boot mode', async () => {
    const img = await t.add('meta');
    const dis = await t.c.call('PUT', `/images/${img.uuid}/actions`, { changeImageState: { stateEvent: 'disable' } });
    assert.equal(dis.body.inventory.state, 'Disabled');
    const badEvent = await t.c.call('PUT', `/images/${img.uuid}/actions`, { changeImageState: { stateEvent: 'off' } });
    assert.equal(badEvent.body.error.code, 'SYS.1007');
    const upd = await t.c.call('PUT', `/images/${img.uuid}/actions`, {
      updateImage: { name: 'renamed', platform: 'WindowsVirtio', description: 'd' },
    });
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.body.inventory.name, 'renamed');
    assert.equal(upd.body.inventory.platform, 'Windows');
    const badFormat = await t.c.call('PUT', `/images/${img.uuid}/actions`, { updateImage: { format: 'vhdx' } });
    assert.equal(badFormat.body.error.code, 'SYS.1007');
    assert.match(badFormat.body.error.details, /valid value for field\[format\].* are \[raw, qcow2, iso\], but vhdx found/);
    const long = await t.c.call('PUT', `/images/${img.uuid}/actions`, { updateImage: { name: 'x'.repeat(256) } });
    assert.match(long.body.error.details, /exceeds max length of string\. expected was <= 255, actual was 256/);
    const boot = await t.c.call('PUT', `/images/${img.uuid}/actions`, { setImageBootMode: { bootMode: 'UEFI' } });
    assert.equal(boot.status, 200, boot.text);
    const tagged = await t.c.call('GET', '/images?q=__systemTag__=bootMode::UEFI');
    assert.deepEqual(
      tagged.body.inventories.map((i: any) => i.uuid),
      [img.uuid],
    );
    const badBoot = await t.c.call('PUT', `/images/${img.uuid}/actions`, { setImageBootMode: { bootMode: 'BIOS' } });
    assert.equal(badBoot.body.error.code, 'SYS.1007');
    const unchanged = await get(t.c, img.uuid);
    assert.equal(unchanged.name, 'renamed', 'failed calls change nothing');
  });

  test('backup storage: update, disable, capacity, types, delete refused while images live on it', async () => {
    const [one, two] = t.storages as [string, string];
    const upd = await t.c.call('PUT', `/backup-storage/${one}/actions`, {
      updateBackupStorage: { name: 'renamed-bs', description: 'first' },
    });
    assert.equal(upd.body.inventory.name, 'renamed-bs');
    const dis = await t.c.call('PUT', `/backup-storage/${two}/actions`, { changeBackupStorageState: { stateEvent: 'disable' } });
    assert.equal(dis.body.inventory.state, 'Disabled');
    const refused = await t.c.call('POST', '/images', {
      params: { name: 'x', url: `file://${join(t.work, 'fixtures', 'a.raw')}`, backupStorageUuids: [two] },
    });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'SYS.1002');
    assert.match(refused.body.error.cause.details, /because its state is Disabled/);
    await t.c.call('PUT', `/backup-storage/${two}/actions`, { changeBackupStorageState: { stateEvent: 'enable' } });
    const cap = await t.c.call('GET', `/backup-storage/capacities?backupStorageUuids=${one}&backupStorageUuids=${two}`);
    const list = (await t.c.call('GET', '/backup-storage')).body.inventories;
    assert.equal(
      cap.body.totalCapacity,
      list.reduce((n: number, b: any) => n + b.totalCapacity, 0),
    );
    const all = await t.c.call('GET', '/backup-storage/capacities?all=true');
    assert.equal(all.body.totalCapacity, cap.body.totalCapacity);
    const types = await t.c.call('GET', '/backup-storage/types');
    assert.ok(types.body.types.includes('LocalBackupStorage'));
    const del = await t.c.call('DELETE', `/backup-storage/${one}`);
    assert.equal(del.status, 503);
    assert.equal(del.body.error.code, 'SYS.1004');
    assert.match(del.body.error.details, /still holds/);
  });
});

describe('image lifecycle, Direct and Never policies and the expunger', () => {
  test('Direct removes bytes and rows at once and gives capacity back', async (tc) => {
    const t = await setup({ ZIMAGE_IMAGE_DELETION_POLICY: 'Direct' }, { imageDeletionPolicy: 'Direct' });
    try {
      const img = await t.add('direct');
      const paths = img.backupStorageRefs.map((r: any) => r.installPath);
      assert.equal((await t.c.call('DELETE', `/images/${img.uuid}`)).status, 200);
      assert.equal(await get(t.c, img.uuid), undefined);
      for (const p of paths) assert.equal(await exists(p), false);
      // Capacity, on a tmpfs of its own so that nothing else moves the figures.
      const small = join(t.work, 'tmpfs');
      await mkdir(small);
      try {
        await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
      } catch (err) {
        tc.skip(
          `the capacity part needs a tmpfs, which needs root (${(err as Error).message.split('\n')[0]}); the byte and row checks above ran`,
        );
        return;
      }
      try {
        const bs = (await t.c.addLocalStorage(small, 'tmpfs')).uuid;
        const avail = async () => (await t.c.call('GET', `/backup-storage/${bs}`)).body.inventories[0].availableCapacity as number;
        const empty = await avail();
        const img2 = await t.add('direct-2', [bs]);
        const full = await avail();
        assert.ok(full <= empty - 1024 * 1024, `adding 1 MiB took capacity: ${empty} -> ${full}`);
        await t.c.call('DELETE', `/images/${img2.uuid}`);
        assert.equal(await avail(), empty, 'the capacity came back');
      } finally {
        await execFileP('umount', [small]);
      }
    } finally {
      await t.stop();
    }
  });

  test('Never keeps the bytes even after expunge', async () => {
    const t = await setup({}, { imageDeletionPolicy: 'Never' });
    try {
      const img = await t.add('never');
      const paths = img.backupStorageRefs.map((r: any) => r.installPath);
      await t.c.call('DELETE', `/images/${img.uuid}`);
      assert.equal((await get(t.c, img.uuid)).status, 'Deleted');
      assert.equal((await t.c.call('PUT', `/images/${img.uuid}/actions`, { expungeImage: {} })).status, 200);
      assert.equal(await get(t.c, img.uuid), undefined);
      for (const p of paths) assert.ok(await exists(p), 'bytes kept under Never');
    } finally {
      await t.stop();
    }
  });

  test('the expunger removes Delay-deleted images after the period', async () => {
    const t = await setup({}, { imageExpungePeriodSec: 0, imageExpungeIntervalSec: 1 });
    try {
      const img = await t.add('expire');
      await t.c.call('DELETE', `/images/${img.uuid}`);
      const deadline = Date.now() + 5000;
      while ((await get(t.c, img.uuid)) !== undefined) {
        assert.ok(Date.now() < deadline, 'expunged within the interval');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await exists(img.backupStorageRefs[0].installPath), false);
    } finally {
      await t.stop();
    }
  });

  test('the periodic ping turns a vanished storage Disconnected and back', async () => {
    const t = await setup({}, { pingIntervalSec: 1 });
    try {
      const dir = join(t.work, 'two');
      const status = async () => (await t.c.call('GET', `/backup-storage/${t.storages[1]}`)).body.inventories[0];
      await rm(dir, { recursive: true });
      let deadline = Date.now() + 5000;
      while ((await status()).status !== 'Disconnected') {
        assert.ok(Date.now() < deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match((await status()).statusReason, /two/);
      await mkdir(dir);
      deadline = Date.now() + 5000;
      while ((await status()).status !== 'Connected') {
        assert.ok(Date.now() < deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await t.stop();
    }
  });
});

describe('X-Web-Hook', () => {
  test('the final body is POSTed with X-Job-UUID and X-Job-Success, retried on failure', async () => {
    const t = await setup();
    const calls: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        calls.push({ headers: req.headers, body });
        res.writeHead(calls.length === 1 ? 500 : 200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    try {
      const img = await t.add('hooked', [t.storages[0]!]);
      const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/done`;
      const res = await t.c.call(
        'PUT',
        `/images/${img.uuid}/actions`,
        { syncImageSize: {} },
        { 'X-Web-Hook': url, 'X-Job-UUID': 'ab'.repeat(16) },
      );
      assert.equal(res.status, 200);
      const deadline = Date.now() + 8000;
      while (calls.length < 2) {
        assert.ok(Date.now() < deadline, `hook called ${calls.length} times`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const call of calls) {
        assert.equal(call.headers['x-job-uuid'], 'ab'.repeat(16));
        assert.equal(call.headers['x-job-success'], 'true');
        assert.equal(JSON.parse(call.body).inventory.uuid, img.uuid);
      }
    } finally {
      hook.close();
      await t.stop();
    }
  });
});

describe('tags given with actions', () => {
  test('systemTags and userTags on actions are stored on the resource and queryable', async () => {
    const t = await setup();
    try {
      const img = await t.add('tagged', [t.storages[0]!]);
      const res = await t.c.call('PUT', `/images/${img.uuid}/actions`, {
        updateImage: { description: 'x' },
        systemTags: ['applianceType::debian'],
        userTags: ['team-a'],
      });
      assert.equal(res.status, 200, res.text);
      await t.c.call('PUT', `/images/${img.uuid}/actions`, { changeImageState: { stateEvent: 'enable', userTags: ['team-a'] } });
      const bySystem = await t.c.call('GET', '/images?q=__systemTag__=applianceType::debian');
      assert.deepEqual(
        bySystem.body.inventories.map((i: any) => i.uuid),
        [img.uuid],
      );
      const byUser = await t.c.call('GET', '/images?q=__userTag__~=team-%25');
      assert.deepEqual(
        byUser.body.inventories.map((i: any) => i.uuid),
        [img.uuid],
      );
      const rows = await t.server
        .app!.db.db.selectFrom('tag')
        .selectAll()
        .where('resource_uuid', '=', img.uuid)
        .where('tag', '=', 'team-a')
        .execute();
      assert.equal(rows.length, 1, 'the same tag twice is stored once');
      await t.c.call('PUT', `/backup-storage/${t.storages[1]}/actions`, {
        updateBackupStorage: { description: 'y' },
        systemTags: ['extraips::10.0.0.12'],
      });
      const bs = await t.c.call('GET', '/backup-storage?q=__systemTag__=extraips::10.0.0.12');
      assert.deepEqual(
        bs.body.inventories.map((b: any) => b.uuid),
        [t.storages[1]],
      );
    } finally {
      await t.stop();
    }
  });
});

describe('GetCandidateBackupStorageForCreatingImage', () => {
  test('lists Enabled, Connected storages with room; volume-based paths answer SYS.1014', async () => {
    const t = await setup();
    try {
      await t.c.call('PUT', `/backup-storage/${t.storages[1]}/actions`, { changeBackupStorageState: { stateEvent: 'disable' } });
      const res = await t.c.call('GET', '/images/candidate-backup-storage');
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.inventories.map((b: any) => b.uuid),
        [t.storages[0]],
      );
      const vol = await t.c.call('GET', `/images/volumes/${'a'.repeat(32)}/candidate-backup-storage`);
      assert.equal(vol.status, 503);
      assert.equal(vol.body.error.code, 'SYS.1014');
    } finally {
      await t.stop();
    }
  });
});

describe('X-Web-Hook safety', () => {
  test('a hook URL that is not http(s) is a 400; one aimed at a metadata address is never called', async () => {
    const t = await setup();
    try {
      const img = await t.add('hook-safety', [t.storages[0]!]);
      const bad = await t.c.raw('PUT', `/images/${img.uuid}/actions`, { syncImageSize: {} }, { 'X-Web-Hook': 'file:///etc/passwd' });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /Invalid header\[X-Web-Hook\]/);
      const { callWebHook } = await import('../src/jobs/webhook.js');
      const opts = (t.server.app!.services.jobs as any).webHooks;
      const logged: string[] = [];
      const log = { warn: (_o: unknown, msg: string) => logged.push(msg) } as any;
      const t0 = Date.now();
      assert.equal(await callWebHook('http://169.254.169.254/latest/meta-data', 'a'.repeat(32), true, {}, log, opts), 'failed');
      assert.ok(Date.now() - t0 < 2000, 'refused at once, no connection attempts or retries');
      assert.match(logged.join('\n'), /denied network 169\.254\.0\.0\/16; not called/);
    } finally {
      await t.stop();
    }
  });
});
