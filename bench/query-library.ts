/**
 * The query bench's image library, generated once and cached under
 * ${XDG_CACHE_HOME:-~/.cache}/zimage-bench/, keyed by the schema (migration names), the generator's version,
 * the size and (PostgreSQL) the server's version: a schema change regenerates it. Every run works on a copy
 * (SQLite file, PostgreSQL data directory), so the cache stays pristine.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { MIGRATION_NAMES } from '../src/db/migrations.js';
import { postgresVersion, startPostgres, type TestPostgres } from '../test/helpers/postgres.js';
import { startInProcess, type TestServer } from '../test/helpers/zimage.js';
import { ImageTally } from '../src/services/image-tally.js';
import { bulkSeed, STORAGE_SHARES } from './query-bulk.js';

/** Bump when bulkSeed's output changes. */
const GENERATOR_VERSION = 2;

export type DbKind = 'sqlite' | 'postgres';

export interface Library {
  server: TestServer;
  /** The library's storages, largest share first. */
  storages: string[];
  /** The running PostgreSQL (kind postgres): the bench creates its empty database beside the library. */
  pg?: TestPostgres;
  stop(): Promise<void>;
}

function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'zimage-bench');
}

function cacheKey(kind: DbKind, n: number): string {
  const pgVersion = kind === 'postgres' ? postgresVersion() : '';
  // The schema is what the migrations create: their compiled text, so any change there regenerates the library.
  const hash = createHash('sha256').update(JSON.stringify([MIGRATION_NAMES, GENERATOR_VERSION, pgVersion]));
  for (const f of ['migrations.js', 'image-tally.js', 'schema.js'])
    hash.update(readFileSync(fileURLToPath(new URL(`../src/db/${f}`, import.meta.url))));
  const schema = hash.digest('hex').slice(0, 12);
  return `query-${kind}${pgVersion}-${n}-${schema}`;
}

/** Builds the cached library: zimage creates the schema and the storages, bulkSeed the rest. */
async function generate(kind: DbKind, n: number, dir: string, log: (s: string) => void): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const pg = kind === 'postgres' ? await startPostgres() : undefined;
  const server = await startInProcess({ dataDir: join(dir, 'gen-data'), db: pg?.url ?? `sqlite:${join(dir, 'zimage.db')}` });
  try {
    await server.client.login();
    const storages: string[] = [];
    for (let k = 0; k < STORAGE_SHARES.length; k++) {
      await mkdir(join(dir, `bs-${k}`));
      storages.push((await server.client.addLocalStorage(join(dir, `bs-${k}`), `library-${k}`)).uuid);
    }
    const db = server.app!.db.db;
    if (kind === 'sqlite') await sql`PRAGMA cache_size = -1048576`.execute(db); // 1 GiB while the indexes are built
    await bulkSeed(db, kind, n, storages);
    await new ImageTally(db).compact(); // the triggers left a delta row per image
    if (pg) await sql`VACUUM ANALYZE`.execute(db); // what autovacuum does to a table this size
    await writeFile(join(dir, 'library.json'), JSON.stringify({ storages }));
  } finally {
    await server.stop();
  }
  if (pg) await pg.saveTo(join(dir, 'pg'));
  await rm(join(dir, 'gen-data'), { recursive: true, force: true });
  await writeFile(join(dir, 'done'), '');
  log(`generated ${n} images on ${kind} in ${((performance.now() - t0) / 1000).toFixed(1)} s into ${dir}`);
}

/** Starts zimage on a copy of the cached library (generating it first when the cache has none). */
export async function openLibrary(kind: DbKind, n: number, runDir: string, log: (s: string) => void): Promise<Library> {
  const dir = join(cacheRoot(), cacheKey(kind, n));
  const ready = await readFile(join(dir, 'done')).then(
    () => true,
    () => false,
  );
  if (!ready) await generate(kind, n, dir, log);
  const { storages } = JSON.parse(await readFile(join(dir, 'library.json'), 'utf8')) as { storages: string[] };
  await mkdir(runDir, { recursive: true });
  const env = { ZIMAGE_IMPORT_FILE_ROOTS: runDir };
  if (kind === 'postgres') {
    const pg = await startPostgres({ template: join(dir, 'pg') });
    const server = await startInProcess({ dataDir: join(runDir, 'data'), db: pg.url }, env);
    return { server, storages, pg, stop: async () => (await server.stop(), await pg.stop()) };
  }
  await copyFile(join(dir, 'zimage.db'), join(runDir, 'zimage.db'));
  const server = await startInProcess({ dataDir: join(runDir, 'data'), db: `sqlite:${join(runDir, 'zimage.db')}` }, env);
  return { server, storages, stop: () => server.stop() };
}
