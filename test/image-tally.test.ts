/**
 * The image tally (counts per state and status kept by triggers) answers exactly what COUNT(*) answers,
 * through inserts, state and status changes, deletes and compaction, on SQLite and PostgreSQL; QueryImage's
 * totals use it and stay the same as before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import type { Db } from '../src/db/connect.js';
import { ImageTally } from '../src/services/image-tally.js';
import { startPostgres } from './helpers/postgres.js';
import { startInProcess } from './helpers/zimage.js';

const PAIRS = [
  [],
  [['state', 'Enabled']],
  [['status', 'Ready']],
  [
    ['state', 'Disabled'],
    ['status', 'Deleted'],
  ],
  [
    ['status', 'Ready'],
    ['status', 'Error'],
  ],
] as const;

async function countBoth(db: Db, tally: ImageTally) {
  for (const pair of PAIRS) {
    const conditions = pair.map(([field, value]) => ({ field, op: '=' as const, value }));
    let q = db.selectFrom('image').select((eb) => eb.fn.countAll<number>().as('n'));
    for (const [field, value] of pair) q = q.where(field, '=', value);
    const expected = Number((await q.executeTakeFirstOrThrow()).n);
    assert.equal(await tally.count(conditions), expected, JSON.stringify(pair));
  }
}

function imageRow(i: number, status: string, state = 'Enabled') {
  return {
    uuid: `tally${String(i).padStart(27, '0')}`,
    name: `t-${i}`,
    description: null,
    state,
    status,
    size: 1,
    actual_size: 1,
    md5_sum: null,
    url: 'http://x/y',
    media_type: 'RootVolumeTemplate',
    guest_os_type: null,
    type: 'zstack',
    platform: 'Linux',
    architecture: 'x86_64',
    format: 'raw',
    system: 0,
    virtio: 1,
    create_date: i,
    last_op_date: i,
  };
}

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`image tally equals COUNT(*) through writes and compaction (${kind})`, async () => {
    const pg = kind === 'postgres' ? await startPostgres() : undefined;
    const server = await startInProcess(pg ? { db: pg.url } : {});
    try {
      const db = server.app!.db.db;
      const tally = new ImageTally(db);
      const statuses = ['Ready', 'Deleted', 'Error', 'Downloading'];
      await db
        .insertInto('image')
        .values(Array.from({ length: 300 }, (_, i) => imageRow(i, statuses[i % 4]!, i % 5 ? 'Enabled' : 'Disabled')))
        .execute();
      await countBoth(db, tally);
      // Status and state changes, one row at a time (as the services do) and many at once.
      for (let i = 0; i < 150; i++) {
        await db
          .updateTable('image')
          .set({ status: i % 2 ? 'Ready' : 'Creating' })
          .where('uuid', '=', imageRow(i * 2, '').uuid)
          .execute();
      }
      await db.updateTable('image').set({ state: 'Disabled' }).where('status', '=', 'Error').execute();
      await db.updateTable('image').set({ name: 'renamed' }).where('status', '=', 'Ready').execute(); // no delta rows
      await db.deleteFrom('image').where('status', '=', 'Deleted').where('state', '=', 'Enabled').execute();
      const rows = async () =>
        Number(
          (
            await db
              .selectFrom('image_tally')
              .select((eb) => eb.fn.countAll<number>().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      assert.ok((await rows()) > ImageTally.COMPACT_AFTER, 'the deltas pile up until a count folds them');
      await countBoth(db, tally); // reads the deltas, then folds them
      assert.ok((await rows()) <= 8, 'one row per (state, status) after compaction');
      await countBoth(db, tally);
      await tally.compact();
      await countBoth(db, tally);
      // QueryImage's totals come from the tally and equal the rows it pages through.
      const c = server.client;
      await c.login();
      const all = await c.call('GET', '/images?count=true');
      assert.equal(all.body.total, Number((await sql<{ n: number }>`SELECT COUNT(*) AS n FROM image`.execute(db)).rows[0]!.n));
      const ready = await c.call('GET', '/images?q=status=Ready&q=state=Enabled&replyWithCount=true&limit=1000');
      assert.equal(ready.body.total, ready.body.inventories.length);
      assert.ok(ready.body.inventories.every((i: any) => i.status === 'Ready' && i.state === 'Enabled'));
      const plan = await server.app!.services.images.explain({ q: 'status=Ready', count: 'true' });
      assert.match(plan.join('\n'), /image_tally/);
    } finally {
      await server.stop();
      await pg?.stop();
    }
  });
}
