/** The QueryImage shapes of the benchmark use an index on both databases: no full scan of the image table. */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { QUERY_SHAPES, seedImages } from '../bench/query-fixture.js';
import { startPostgres } from './helpers/postgres.js';
import { startInProcess, tempDir } from './helpers/zimage.js';

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`QueryImage plans use an index (${kind})`, async () => {
    const work = await tempDir();
    await mkdir(join(work, 'bs'));
    const pg = kind === 'postgres' ? await startPostgres() : undefined;
    const server = await startInProcess(pg ? { db: pg.url } : {});
    try {
      await server.client.login();
      const bs = (await server.client.addLocalStorage(join(work, 'bs'))).uuid;
      await seedImages(server.app!.db.db, 3000, [bs]);
      if (pg) await sql`ANALYZE`.execute(server.app!.db.db);
      for (const shape of QUERY_SHAPES) {
        const plan = (await server.app!.services.images.explain(shape.query)).join('\n');
        assert.doesNotMatch(plan, kind === 'sqlite' ? /^SCAN image\b(?! USING)/m : /Seq Scan on image\b/, `${shape.label}:\n${plan}`);
        assert.match(plan, /INDEX|Index/, `${shape.label}:\n${plan}`);
        const qs = new URLSearchParams();
        for (const [k, v] of Object.entries(shape.query)) for (const x of [v].flat()) qs.append(k, x);
        const res = await server.client.call('GET', `/images?${qs}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.inventories.length > 0, shape.label);
      }
    } finally {
      await server.stop();
      await pg?.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
}
