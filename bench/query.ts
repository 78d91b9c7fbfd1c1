/**
 * QueryImage on a 10,000-image library: a filtered, sorted, paged query over HTTP, median latency, and the
 * database's plan (which must use an index, not scan the table). `node --import tsx bench/query.ts`.
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startInProcess } from '../test/helpers/zimage.js';
import { QUERY_SHAPES, seedImages } from './query-fixture.js';
import { median } from './util.js';

export async function benchQuery(workDir: string, n = 10_000, rounds = 50): Promise<string[]> {
  const run = join(workDir, 'query-run');
  await rm(run, { recursive: true, force: true });
  await mkdir(join(run, 'bs'), { recursive: true });
  const server = await startInProcess({ dataDir: join(run, 'data') });
  const lines: string[] = [`QueryImage on ${n} images (SQLite, over HTTP, ${rounds} rounds each, medians; target < 20 ms)`];
  try {
    await server.client.login();
    const bs = (await server.client.addLocalStorage(join(run, 'bs'))).uuid;
    await seedImages(server.app!.db.db, n, [bs]);
    for (const shape of QUERY_SHAPES) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(shape.query)) for (const x of [v].flat()) qs.append(k, x);
      const times: number[] = [];
      let count = 0;
      for (let i = 0; i < rounds + 5; i++) {
        const t0 = performance.now();
        const res = await server.client.raw('GET', `/images?${qs}`);
        if (i >= 5) times.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(res.text);
        count = res.body.inventories.length;
      }
      const plan = await server.app!.services.images.explain(shape.query);
      const scans = plan.some((p) => /^SCAN image\b(?! USING)/.test(p));
      lines.push(
        `${shape.label.padEnd(46)} median ${median(times).toFixed(2).padStart(6)} ms  (${count} rows) ${median(times) < 20 ? 'OK' : 'MISS'} | plan: ${plan.join('; ')}${scans ? '  FULL SCAN' : ''}`,
      );
    }
  } finally {
    await server.stop();
    await rm(run, { recursive: true, force: true });
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await benchQuery(process.argv[2] ?? join(tmpdir(), 'zimage-bench'))) console.log(line);
}
