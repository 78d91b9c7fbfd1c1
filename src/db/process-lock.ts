import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

/*
 * One live process per data directory and per node id. Both locks are held by the kernel or the database
 * on behalf of an open file / connection, so they vanish when the process dies, even by kill -9: there is
 * no stale lock to clean up by hand.
 */

export interface HeldLock {
  release(): Promise<void>;
}

const LOCK_FILE = 'zimage.lock';
const PID_FILE = 'zimage.pid';

/**
 * Takes `<dir>/zimage.lock`: an SQLite database opened in exclusive locking mode with a write committed,
 * so SQLite keeps its exclusive fcntl lock for as long as the connection is open. Writes the holder's PID
 * to `<dir>/zimage.pid` so a second process can name it. Throws "data directory X is in use by process PID".
 */
export function lockDataDir(dir: string): HeldLock {
  const db = new BetterSqlite3(join(dir, LOCK_FILE), { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = DELETE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER, host TEXT, started INTEGER)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder VALUES (?, ?, ?)').run(process.pid, hostname(), Date.now());
    db.exec('COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') || (err as { code?: string }).code?.startsWith('SQLITE_LOCKED')) {
      let holder = 'another process';
      try {
        const pid = readFileSync(join(dir, PID_FILE), 'utf8').trim();
        if (/^\d+$/.test(pid)) holder = `process ${pid}`;
      } catch {
        /* the holder has not written its PID yet */
      }
      throw new Error(`data directory ${dir} is in use by ${holder}; stop it first or give this one another --data-dir`, { cause: err });
    }
    throw new Error(`cannot lock data directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  writeFileSync(join(dir, PID_FILE), `${process.pid}\n`);
  let released = false;
  return {
    release() {
      if (!released) {
        released = true;
        rmSync(join(dir, PID_FILE), { force: true });
        db.close();
      }
      return Promise.resolve();
    },
  };
}

/** The two 32-bit halves of a 64-bit advisory-lock key derived from the node id. */
function nodeKey(nodeId: string): [number, number] {
  const h = createHash('sha256').update(`zimage-node:${nodeId}`).digest();
  return [h.readInt32BE(0), h.readInt32BE(4)];
}

/**
 * Takes a session-level PostgreSQL advisory lock on the node id, on a dedicated connection kept open for
 * the life of the process; PostgreSQL releases it when that connection ends. Throws when a live process
 * already holds it, naming that process as its connection announced itself (application_name).
 */
export async function lockNodeId(url: string, nodeId: string, onLost: (err: Error) => void): Promise<HeldLock> {
  const client = new pg.Client({
    connectionString: url,
    application_name: `zimage node ${nodeId} pid ${process.pid} on ${hostname()}`.slice(0, 63),
  });
  await client.connect();
  const [k1, k2] = nodeKey(nodeId);
  try {
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [k1, k2]);
    if (!got.rows[0]?.ok) {
      const who = await client
        .query<{ application_name: string; client_addr: string | null }>(
          `SELECT a.application_name, a.client_addr::text AS client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid AND l.objsubid = 2 AND l.granted LIMIT 1`,
          [k1 >>> 0, k2 >>> 0],
        )
        .then((r) => r.rows[0])
        .catch(() => undefined);
      const holder = who
        ? `${who.application_name || 'a process'}${who.client_addr ? ` (from ${who.client_addr})` : ''}`
        : 'another process';
      throw new Error(`node id ${nodeId} is in use on this PostgreSQL database by ${holder}; give each process its own ZIMAGE_NODE_ID`);
    }
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  let released = false;
  client.on('error', (err) => {
    if (!released) onLost(err);
  });
  return {
    async release() {
      if (released) return;
      released = true;
      await client.end().catch(() => undefined);
    },
  };
}
