/**
 * A throwaway PostgreSQL server for tests: initdb in a temporary directory, started on 127.0.0.1 on a free
 * port, trust authentication, stopped and removed afterwards. PostgreSQL refuses to run as root, so as root
 * the server runs as the `postgres` system user (created by Debian's postgresql package).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileP = promisify(execFile);

function pgBin(name: string): string {
  for (const dir of ['/usr/lib/postgresql']) {
    if (!existsSync(dir)) continue;
    const versions = readdirSync(dir).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(dir, v, 'bin', name))) return join(dir, v, 'bin', name);
  }
  return name; // on PATH
}

/** The installed server's major version (its binaries' directory name), e.g. "15". */
export const postgresVersion = (): string => basename(dirname(dirname(pgBin('postgres'))));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface TestPostgres {
  /** postgres://… of a fresh database (or of the template's `zimage` database). */
  url: string;
  /** The server's major version (its binaries' directory name), e.g. "15". */
  version: string;
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
  /** Stops the server cleanly and copies its data directory to `dest` (a template for a later start). */
  saveTo(dest: string): Promise<void>;
}

/**
 * Starts a server on a fresh cluster, or on a copy of `template` (a data directory kept by `saveTo`, whose
 * `zimage` database already exists): the template itself is never changed.
 */
export async function startPostgres(opts: { template?: string } = {}): Promise<TestPostgres> {
  const asRoot = userInfo().uid === 0;
  const runAs = async (cmd: string, args: string[]) =>
    asRoot ? execFileP('runuser', ['-u', 'postgres', '--', cmd, ...args]) : execFileP(cmd, args);
  const dir = await mkdtemp(join(tmpdir(), 'zimage-pg-'));
  await chmod(dir, 0o755);
  const data = join(dir, 'data');
  if (asRoot) {
    const { stdout } = await execFileP('id', ['-u', 'postgres']);
    const { stdout: gid } = await execFileP('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  if (opts.template)
    await execFileP('cp', ['-a', opts.template, data]); // -a keeps the postgres owner
  else await runAs(pgBin('initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const args = ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-F', '-c', 'fsync=off', '-c', 'synchronous_commit=off'];
  const proc: ChildProcess = asRoot
    ? spawn('runuser', ['-u', 'postgres', '--', pgBin('postgres'), ...args], { stdio: 'ignore' })
    : spawn(pgBin('postgres'), args, { stdio: 'ignore' });
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const client = new pg.Client({ connectionString: admin });
    try {
      await client.connect();
      await client.end();
      break;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`postgres did not start: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const createDatabase = async (name: string) => {
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
    await client.end();
    return `postgres://postgres@127.0.0.1:${port}/${name}`;
  };
  const shutdown = async () => {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    // Signal the postmaster itself (runuser does not forward signals): SIGINT is PostgreSQL's fast shutdown.
    const pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
    if (pid > 0) process.kill(pid, 'SIGINT');
    else proc.kill('SIGINT');
    const timer = setTimeout(() => {
      if (pid > 0) process.kill(pid, 'SIGKILL');
      proc.kill('SIGKILL');
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url: opts.template ? `postgres://postgres@127.0.0.1:${port}/zimage` : await createDatabase('zimage'),
    version: postgresVersion(),
    createDatabase,
    async stop() {
      await shutdown();
      await rm(dir, { recursive: true, force: true });
    },
    async saveTo(dest: string) {
      await shutdown();
      await rm(dest, { recursive: true, force: true });
      await execFileP('cp', ['-a', data, dest]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
