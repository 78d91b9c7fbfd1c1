/**
 * QueryImage on a large library (default 10,000 images; `npm run bench -- query --images 1000000`), on SQLite
 * and on a real PostgreSQL: each shape over HTTP, median latency beside its target, and the database's plan
 * (which must use indexes, not scan a table). Then AddImage and SyncImageSize on the library against the same
 * calls on an empty database, rounds alternating between the two. `node dist/bench/query.js [dir] [images]`.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startInProcess, type TestServer, type ZClient } from '../test/helpers/zimage.js';
import { queryShapes, sampleName } from './query-fixture.js';
import { type DbKind, openLibrary } from './query-library.js';
import { median } from './util.js';

const verdict = (ok: boolean) => (ok ? 'OK' : 'MISS');

/** One API call to its end: the reply, or the job's final answer polled every 2 ms (not 50 ms like the tests). */
async function callToEnd(c: ZClient, method: string, path: string, body?: unknown): Promise<{ ms: number; body: any }> {
  const t0 = performance.now();
  let res = await c.raw(method, path, body);
  const location: string | undefined = res.status === 202 ? res.body?.location : undefined;
  while (location && res.status === 202) {
    await new Promise((r) => setTimeout(r, 2));
    const r = await fetch(location);
    const text = await r.text();
    res = { status: r.status, body: text ? JSON.parse(text) : undefined, text, headers: r.headers };
  }
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
  return { ms, body: res.body };
}

async function timeShapes(server: TestServer, ctx: Parameters<typeof queryShapes>[0], rounds: number): Promise<string[]> {
  const lines: string[] = [];
  for (const shape of queryShapes(ctx)) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(shape.query)) for (const x of [v].flat()) qs.append(k, x);
    const times: number[] = [];
    let answer = '';
    for (let i = 0; i < rounds + 3; i++) {
      const t0 = performance.now();
      const res = await server.client.raw('GET', `/images?${qs}`);
      if (i >= 3) times.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`${shape.label}: ${res.text}`);
      answer = [
        res.body.inventories ? `${res.body.inventories.length} rows` : '',
        res.body.total !== undefined ? `total ${res.body.total}` : '',
      ]
        .filter(Boolean)
        .join(', ');
    }
    // The same query in-process (no HTTP, session or JSON): the database's share of the time.
    const inProcess: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await server.app!.services.images.query(shape.query);
      inProcess.push(performance.now() - t0);
    }
    const plan = await server.app!.services.images.explain(shape.query);
    const scans = plan.some((p) =>
      /^SCAN (image|image_backup_storage_ref|tag)\b(?! USING)|Seq Scan on (image|image_backup_storage_ref|tag)\b/.test(p.trim()),
    );
    const m = median(times);
    lines.push(
      `  ${shape.label.padEnd(58)} median ${m.toFixed(2).padStart(7)} ms (target < ${shape.targetMs} ms) ${verdict(m < shape.targetMs).padEnd(4)} | in-process ${median(inProcess).toFixed(2).padStart(6)} ms [${answer}]${scans ? '  FULL SCAN' : ''}`,
    );
    if (process.env.ZIMAGE_BENCH_PLANS) lines.push(...plan.map((p) => `      ${p}`));
  }
  return lines;
}

/** AddImage (1 MiB file) and SyncImageSize on the library and on an empty database, alternating rounds. */
async function timeWrites(run: string, lib: TestServer, empty: TestServer, rounds: number): Promise<string[]> {
  const source = join(run, 'small.qcow2.raw');
  await writeFile(source, Buffer.alloc(1 << 20, 7));
  const targets = [lib, empty];
  const bs: string[] = [];
  for (const [k, s] of targets.entries()) {
    await mkdir(join(run, `bs-write-${k}`));
    bs.push((await s.client.addLocalStorage(join(run, `bs-write-${k}`), 'write-bench')).uuid);
  }
  const add: number[][] = [[], []];
  const sync: number[][] = [[], []];
  const added: string[][] = [[], []];
  for (let i = 0; i < rounds + 2; i++) {
    for (const [k, s] of targets.entries()) {
      const params = { name: `write-bench-${i}`, url: `file://${source}`, format: 'raw', backupStorageUuids: [bs[k]] };
      const r = await callToEnd(s.client, 'POST', '/images', { params });
      if (i >= 2) add[k]!.push(r.ms);
      added[k]!.push(r.body.inventory.uuid);
    }
  }
  for (let i = 0; i < rounds + 2; i++) {
    for (const [k, s] of targets.entries()) {
      const r = await callToEnd(s.client, 'PUT', `/images/${added[k]![i % added[k]!.length]}/actions`, { syncImageSize: {} });
      if (i >= 2) sync[k]!.push(r.ms);
    }
  }
  const line = (api: string, xs: number[][]) => {
    const ratio = median(xs[0]!) / median(xs[1]!);
    return `  ${api.padEnd(14)} median ${median(xs[0]!).toFixed(2).padStart(7)} ms | empty database ${median(xs[1]!).toFixed(2).padStart(7)} ms | ratio ${ratio.toFixed(2)} (target <= 1.20) ${verdict(ratio <= 1.2)}`;
  };
  return [line('AddImage', add), line('SyncImageSize', sync)];
}

async function benchOn(kind: DbKind, workDir: string, n: number, rounds: number, log: (s: string) => void): Promise<string[]> {
  const run = join(workDir, `query-run-${kind}`);
  await rm(run, { recursive: true, force: true });
  const lib = await openLibrary(kind, n, run, log);
  let empty: TestServer | undefined;
  try {
    const emptyDb = lib.pg ? await lib.pg.createDatabase('empty') : `sqlite:${join(run, 'empty.db')}`;
    empty = await startInProcess({ dataDir: join(run, 'empty-data'), db: emptyDb }, { ZIMAGE_IMPORT_FILE_ROOTS: run });
    await lib.server.client.login();
    await empty.client.login();
    await mkdir(join(run, 'bs-empty'));
    const emptyStorage = (await lib.server.client.addLocalStorage(join(run, 'bs-empty'), 'empty')).uuid;
    const ctx = { storages: lib.storages, emptyStorage, name: await sampleName(lib.server.app!.db.db, n) };
    return [
      `QueryImage on ${n} images (${kind === 'sqlite' ? 'SQLite' : `PostgreSQL ${lib.pg!.version}`}, over HTTP, ${rounds} rounds each, medians)`,
      ...(await timeShapes(lib.server, ctx, rounds)),
      `Writes with ${n} images vs an empty database (${kind}, ${2 * rounds} alternating rounds, medians)`,
      ...(await timeWrites(run, lib.server, empty, 2 * rounds)),
    ];
  } finally {
    await empty?.stop();
    await lib.stop();
    await rm(run, { recursive: true, force: true });
  }
}

export async function benchQuery(workDir: string, opts: { images?: number; rounds?: number } = {}): Promise<string[]> {
  const n = opts.images ?? 10_000;
  const rounds = opts.rounds ?? 30;
  const lines: string[] = [];
  for (const kind of ['sqlite', 'postgres'] as const) {
    try {
      lines.push(...(await benchOn(kind, workDir, n, rounds, (s) => lines.push(`(${s})`))));
    } catch (err) {
      lines.push(`(${kind} could not run: ${(err as Error).message.split('\n')[0]})`);
    }
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const lines = await benchQuery(process.argv[2] ?? join(tmpdir(), 'zimage-bench'), { images: Number(process.argv[3] ?? 10_000) });
  for (const line of lines) console.log(line);
}
