/**
 * Fencing of CalculateImageHash: a node that lost the job's lease to another node while it read the copy
 * records no digest (the lease is checked in the transaction that would write it), and records no end.
 * The lease is taken away between two heartbeats (a long lease), so the commit itself meets the fence.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startInProcess, tempDir, waitFor, type TestServer, ZClient } from './helpers/zimage.js';

const SIZE = 512 * 1024 ** 2; // random head, sparse tail: SM3 over it takes a few seconds

describe('CalculateImageHash fencing', () => {
  let server: TestServer;
  let work: string;
  let c: ZClient;
  let bs: string;
  let image: { uuid: string; md5Sum: string };

  before(async () => {
    work = await tempDir();
    const fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    await mkdir(join(work, 'storage'));
    // A heartbeat every 2 minutes: the job keeps running here after its lease is taken, up to its commit.
    server = await startInProcess({ syncWaitMs: 0 }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures, ZIMAGE_NODE_LEASE_SECONDS: '600' });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(join(work, 'storage'))).uuid;
    await writeFile(join(fixtures, 'a.raw'), randomBytes(4 * 1024 * 1024));
    const res = await c.call('POST', '/images', {
      params: { name: 'a', url: `file://${join(fixtures, 'a.raw')}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(res.status, 200, res.text);
    await truncate(res.body.inventory.backupStorageRefs[0].installPath as string, SIZE);
    image = { uuid: res.body.inventory.uuid, md5Sum: res.body.inventory.md5Sum };
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a node that lost the lease mid-read records no digest and no end', async () => {
    const db = server.app!.db.db;
    const res = await c.raw('PUT', `/images/${image.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: 'SM3' } });
    assert.equal(res.status, 202, res.text);
    const job = String(res.body.location).split('/').pop()!;
    const row = () => db.selectFrom('api_job').selectAll().where('uuid', '=', job).executeTakeFirstOrThrow();
    await waitFor(
      'the read to run',
      async () => (await row()).state === 'Running' && server.app!.services.measurer.flights.size > 0,
      10_000,
    );
    // Another node took the job over (its lease ran out meanwhile): a new attempt, held elsewhere.
    const taken = await db
      .updateTable('api_job')
      .set((eb) => ({ attempt: eb('attempt', '+', 1), owner_node: 'other-node', lease_until: Date.now() + 600_000 }))
      .where('uuid', '=', job)
      .where('state', '=', 'Running')
      .executeTakeFirst();
    assert.equal(Number(taken.numUpdatedRows), 1);
    await waitFor('the read to end', () => Promise.resolve(server.app!.services.measurer.flights.size === 0), 60_000);
    await sleep(500); // the commit attempt follows the read
    const digests = await db
      .selectFrom('image_digest')
      .selectAll()
      .where('image_uuid', '=', image.uuid)
      .where('source', '=', 'calculate')
      .execute();
    assert.deepEqual(digests, [], 'no digest recorded by the node that lost the job');
    const img = await db.selectFrom('image').select('md5_sum').where('uuid', '=', image.uuid).executeTakeFirstOrThrow();
    assert.equal(img.md5_sum, image.md5Sum, 'md5Sum untouched');
    const after = await row();
    assert.equal(after.state, 'Running', 'the end is left to the node holding the job');
    assert.equal(after.owner_node, 'other-node');
    assert.equal(after.result, null);
  });
});
