/**
 * The QueryImage shapes of the benchmark use indexes on both databases: no full scan of the image, copy or
 * tag table (small data and EXPLAIN: the timings are the benchmark's business).
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { bulkSeed, STORAGE_SHARES } from '../bench/query-bulk.js';
import { queryShapes, sampleName } from '../bench/query-fixture.js';
import { ImageTally } from '../src/services/image-tally.js';
import { startPostgres } from './helpers/postgres.js';
import { startInProcess, tempDir } from './helpers/zimage.js';

const FULL_SCAN = {
  sqlite: /^(count: )?SCAN (image|image_backup_storage_ref|tag)\b(?! USING)/m,
  postgres: /Seq Scan on (image|image_backup_storage_ref|tag)\b/,
};

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`QueryImage plans use indexes (${kind})`, async () => {
    const work = await tempDir();
    const pg = kind === 'postgres' ? await startPostgres() : undefined;
    const server = await startInProcess(pg ? { db: pg.url } : {});
    try {
      await server.client.login();
      const storages: string[] = [];
      for (let k = 0; k < STORAGE_SHARES.length; k++) {
        await mkdir(join(work, `bs-${k}`));
        storages.push((await server.client.addLocalStorage(join(work, `bs-${k}`), `bs-${k}`)).uuid);
      }
      await mkdir(join(work, 'bs-empty'));
      const emptyStorage = (await server.client.addLocalStorage(join(work, 'bs-empty'), 'bs-empty')).uuid;
      const n = 20_000;
      const db = server.app!.db.db;
      await bulkSeed(db, kind, n, storages);
      await new ImageTally(db).compact();
      await sql`ANALYZE`.execute(db);
      for (const shape of queryShapes({ storages, emptyStorage, name: await sampleName(db, n) })) {
        const plan = (await server.app!.services.images.explain(shape.query)).join('\n');
        assert.doesNotMatch(plan, FULL_SCAN[kind], `${shape.label}:\n${plan}`);
        // Totals by state and status (or of everything) come from the tally, not from counting image rows.
        const counted = shape.query.count === 'true' || shape.query.replyWithCount === 'true';
        const tallied = counted && [shape.query.q ?? []].flat().every((c) => /^(state|status)=/.test(c));
        if (tallied) assert.match(plan, /^count: .*image_tally/m, shape.label);
        const imagePlan = plan
          .split('\n')
          .filter((l) => !(tallied && l.startsWith('count: ')))
          .join('\n');
        if (imagePlan) assert.match(imagePlan, /INDEX|Index/, `${shape.label}:\n${plan}`);
        // A small set (a storage just added, a rare tag) is read first from its own index.
        if (/empty storage/.test(shape.label)) assert.match(plan, /ref_backup_storage/, `${shape.label}:\n${plan}`);
        if (/rare tag/.test(shape.label)) assert.match(plan, /tag_type_tag/, `${shape.label}:\n${plan}`);
        const qs = new URLSearchParams();
        for (const [k, v] of Object.entries(shape.query)) for (const x of [v].flat()) qs.append(k, x);
        const res = await server.client.call('GET', `/images?${qs}`);
        assert.equal(res.status, 200, res.text);
        if (shape.query.count === 'true') assert.ok(res.body.total > 0, shape.label);
        else if (!/empty storage/.test(shape.label)) assert.ok(res.body.inventories.length > 0, shape.label);
      }
    } finally {
      await server.stop();
      await pg?.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
}
