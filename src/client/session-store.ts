import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** What `zimage login` keeps between commands. */
export interface StoredSession {
  url: string;
  accountName: string;
  sessionUuid: string;
  createdAt: string;
}

/** `$XDG_CONFIG_HOME/zimage/session.json`, else `~/.config/zimage/session.json`. */
export function sessionPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'zimage', 'session.json');
}

export async function loadSession(path = sessionPath()): Promise<StoredSession | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const s = JSON.parse(text) as Partial<StoredSession>;
  if (typeof s.url !== 'string' || typeof s.sessionUuid !== 'string')
    throw new Error(`${path} is not a zimage session file; remove it and log in again`);
  return s as StoredSession;
}

/** Written owner-only (0600, directory 0700) and atomically: a session uuid is a credential. */
export async function saveSession(session: StoredSession, path = sessionPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function removeSession(path = sessionPath()): Promise<void> {
  await rm(path, { force: true });
}
