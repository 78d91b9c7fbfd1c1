/**
 * A real OpenSSH server for the SFTP tests: `/usr/sbin/sshd -D -e -f <config>` on 127.0.0.1 and a free
 * port, with its own host key, sshd_config and authorized_keys in a temporary directory. Root logs in with
 * a key (most tests); a dedicated user `zimage-sftp` logs in with a password (password tests).
 *
 *   const sshd = await startSshd();
 *   sshd.port, sshd.clientKey (PEM), sshd.hostFingerprint ('SHA256:…')
 *   await sshd.stop();                      // master and every session process: the host is "gone"
 *   await sshd.start();                     // same port, same host key
 *   await sshd.start({ newHostKey: true }); // same port, a new host key (a reinstalled host)
 *   await sshd.close();                     // stops and removes the directory
 *
 * Needs root (sshd binds and switches users) and openssh-server; when sshd is missing, an
 * `apt-get install openssh-server` is tried once.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

/**
 * The user the tests log in as (login shell /bin/sh = dash, as on most storage hosts; root's shell here
 * sources a slow ~/.bashrc). It accepts both the client key and PASSWORD_USER_PASSWORD.
 */
export const PASSWORD_USER = 'zimage-sftp';
/** The test user's password: quotes and spaces on purpose. */
export const PASSWORD_USER_PASSWORD = `pa ss'w"rd-${'x'.repeat(4)}`;

/** uid and gid of PASSWORD_USER (after startSshd). */
export async function testUserIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', PASSWORD_USER]), run('id', ['-g', PASSWORD_USER])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Makes a directory (recursively) owned by the test user, so that it can serve as a backup storage. */
export async function userDir(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const { uid, gid } = await testUserIds();
  await fsp.chown(dir, uid, gid);
  return dir;
}

export interface TestSshd {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  /** A second port of the same sshd whose sessions get a PATH without `openssl` (a host missing a tool). */
  readonly limitedPort: number;
  /** Private key (OpenSSH PEM) authorized for root and for PASSWORD_USER. */
  readonly clientKey: string;
  /** A key that is NOT authorized anywhere. */
  readonly otherKey: string;
  /** Current host key fingerprint, as `ssh-keygen -l` prints it (SHA256:base64). */
  hostFingerprint: string;
  /** Running now. */
  readonly running: boolean;
  start(opts?: { newHostKey?: boolean }): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
  /** Everything sshd printed (stderr, -e). */
  output(): string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function ensureSshd(): Promise<void> {
  if (existsSync(SSHD)) return;
  try {
    await run('apt-get', ['install', '-y', '-q', 'openssh-server'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    throw new Error(`${SSHD} is missing and openssh-server could not be installed: ${(err as Error).message}`, { cause: err });
  }
}

async function ensurePasswordUser(): Promise<void> {
  try {
    await run('id', [PASSWORD_USER]);
  } catch {
    // Two test files may race here: "already exists" (9) is fine.
    await run('useradd', ['-M', '-d', '/', '-s', '/bin/sh', PASSWORD_USER]).catch((err: { code?: number }) => {
      if (err.code !== 9) throw err;
    });
  }
  const entry = (await run('getent', ['passwd', PASSWORD_USER])).stdout.trim().split(':');
  if (entry[5] !== '/' || entry[6] !== '/bin/sh') await run('usermod', ['-d', '/', '-s', '/bin/sh', PASSWORD_USER]);
  const child = spawn('chpasswd', [], { stdio: ['pipe', 'ignore', 'pipe'] });
  let errText = '';
  child.stderr.on('data', (d) => (errText += d));
  child.stdin.end(`${PASSWORD_USER}:${PASSWORD_USER_PASSWORD}\n`);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`chpasswd failed: ${errText}`);
}

async function keygen(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await fsp.rm(`${file}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'zimage-test', '-f', file]);
}

/** SHA256 fingerprint of an OpenSSH public key line, as ssh-keygen -l prints it. */
export function fingerprintOfPublicKey(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1]!, 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Pids of the sshd processes below `top` (per-connection monitors and their unprivileged children). */
async function sshdDescendantsOf(top: number): Promise<number[]> {
  const procs: Array<{ pid: number; ppid: number; comm: string }> = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await fsp.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const m = /^\d+ \((.*)\) \S+ (\d+)/s.exec(stat);
    if (m) procs.push({ pid: Number(name), ppid: Number(m[2]), comm: m[1]! });
  }
  const out: number[] = [];
  const walk = (ppid: number): void => {
    for (const p of procs) {
      if (p.ppid === ppid && p.comm.startsWith('sshd')) {
        out.push(p.pid);
        walk(p.pid);
      }
    }
  };
  walk(top);
  return out;
}

/** The loopback addresses the test sshd listens on (the limited port: the first four). */
export const SSHD_HOSTS = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 1}`);

export async function startSshd(): Promise<TestSshd> {
  await ensureSshd();
  await ensurePasswordUser();
  await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'zimage-sshd-'));
  await fsp.chmod(dir, 0o755);
  const port = await freePort();
  let limitedPort = await freePort();
  while (limitedPort === port) limitedPort = await freePort();
  // Every tool a session may need, except openssl.
  const limitedBin = path.join(dir, 'limited-bin');
  await fsp.mkdir(limitedBin);
  for (const tool of [
    'sh',
    'stat',
    'df',
    'dd',
    'realpath',
    'mkfifo',
    'mktemp',
    'tee',
    'sed',
    'sleep',
    'mv',
    'rm',
    'rmdir',
    'mkdir',
    'cat',
    'true',
  ]) {
    const { stdout } = await run('sh', ['-c', 'command -v "$1"', 'sh', tool]);
    await fsp.symlink(stdout.trim(), path.join(limitedBin, tool));
  }
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKeyFile = path.join(dir, 'client_ed25519');
  const otherKeyFile = path.join(dir, 'other_ed25519');
  await Promise.all([keygen(hostKey), keygen(clientKeyFile), keygen(otherKeyFile)]);
  await fsp.writeFile(path.join(dir, 'authorized_keys'), await fsp.readFile(`${clientKeyFile}.pub`, 'utf8'), { mode: 0o644 });
  const config = path.join(dir, 'sshd_config');
  await fsp.writeFile(
    config,
    [
      // Several loopback addresses: ZStack allows one SFTP storage per hostname, tests add several.
      ...SSHD_HOSTS.map((h) => `ListenAddress ${h}:${port}`),
      ...SSHD_HOSTS.slice(0, 4).map((h) => `ListenAddress ${h}:${limitedPort}`),
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxSessions 20',
      'MaxStartups 50',
      'LogLevel ERROR',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      `Match LocalPort ${limitedPort}`,
      `    SetEnv PATH=${limitedBin}`,
      '',
    ].join('\n'),
  );

  let proc: ChildProcess | undefined;
  let out = '';
  let fingerprint = fingerprintOfPublicKey(await fsp.readFile(`${hostKey}.pub`, 'utf8'));

  const waitListening = async (): Promise<void> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      if (proc?.exitCode !== null && proc?.exitCode !== undefined) throw new Error(`sshd exited with ${proc.exitCode}:\n${out}`);
      if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}:\n${out}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const self: TestSshd = {
    dir,
    host: '127.0.0.1',
    port,
    limitedPort,
    clientKey: await fsp.readFile(clientKeyFile, 'utf8'),
    otherKey: await fsp.readFile(otherKeyFile, 'utf8'),
    get hostFingerprint() {
      return fingerprint;
    },
    set hostFingerprint(v: string) {
      fingerprint = v;
    },
    get running() {
      return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
    },
    async start(opts = {}) {
      if (self.running) return;
      if (opts.newHostKey) {
        await keygen(hostKey);
        fingerprint = fingerprintOfPublicKey(await fsp.readFile(`${hostKey}.pub`, 'utf8'));
      }
      const p = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      proc = p;
      p.stderr.on('data', (d) => (out += d));
      await waitListening();
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      // The per-connection sshd processes go too, as on a host going down (the sessions' own commands are
      // left to notice that their channel is gone).
      const sessions = await sshdDescendantsOf(p.pid!);
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      for (const pid of sessions) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
    async close() {
      await self.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    },
    output: () => out,
  };
  await self.start();
  return self;
}
