import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { makeDirs } from '../lib/data-dir.js';
import { migrateToLatest } from './migrations.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface DbHandle {
  db: Db;
  kind: 'sqlite' | 'postgres';
  close(): Promise<void>;
}

/**
 * Opens the database named by `url`: `postgres://…` / `postgresql://…` for PostgreSQL, otherwise
 * `sqlite:<path>` or a plain path for SQLite. Runs migrations before returning.
 */
export async function openDatabase(url: string, log?: { warn(obj: object, msg: string): void }): Promise<DbHandle> {
  let handle: DbHandle;
  if (/^postgres(ql)?:\/\//.test(url)) {
    // int8 (sizes, dates) arrives as a string by default; every value we store fits in 2^53.
    pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // An idle connection that breaks (server restarted or stopped) must not crash the process: the pool
    // drops it, and the next query opens a new one or fails with its own error (/ready reports it).
    pool.on('error', (err) => log?.warn({ err }, 'a database connection broke'));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    handle = { db, kind: 'postgres', close: () => db.destroy() };
  } else {
    const path = resolve(url.replace(/^sqlite:(\/\/)?/, ''));
    makeDirs(dirname(path)); // not mkdir({recursive}): it spins forever under /proc
    const sqlite = new BetterSqlite3(path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('busy_timeout = 5000');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    handle = { db, kind: 'sqlite', close: () => db.destroy() };
  }
  await migrateToLatest(handle.db);
  return handle;
}
