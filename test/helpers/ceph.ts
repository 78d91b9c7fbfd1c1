import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './zimage.js';

const run = promisify(execFile);
const SCRIPT = join(ROOT, 'scripts/ceph-test-cluster.sh');

export interface CephCluster {
  dir: string;
  conf: string;
  /** monUrls entry reaching this cluster ("127.0.0.1" on the default ports, else "127.0.0.1:<v2 port>"). */
  monUrl: string;
  auth: 'none' | 'cephx';
  /** client.admin's secret (cephx only). */
  adminKey?: string;
  /** Seconds `start` took (includes installing packages when they were missing). */
  startSeconds: number;
  /** Seconds spent installing packages (0 when they were present). */
  installSeconds: number;
  /** Runs the `ceph` command as admin against this cluster. */
  ceph(args: string[]): Promise<string>;
  /** Runs the `rbd` command as admin against this cluster. */
  rbd(args: string[]): Promise<string>;
  /** Stops the daemons and removes the directory; idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs every daemon at once (a crashed cluster); stop() still cleans up. */
  crash(): void;
}

/**
 * Starts a fresh one-node Ceph cluster (mon + mgr + memstore OSD on 127.0.0.1) with
 * scripts/ceph-test-cluster.sh. Each test file uses its own `name` and `monPort` so files can run in
 * parallel. monPort 3300 is Ceph's default (v1 on 6789), so `monUrls: ["127.0.0.1"]` reaches it.
 * Pick ports below 32768 (or above 60999): inside Linux's ephemeral range an outgoing socket may hold one.
 */
export async function startCephCluster(opts: {
  name: string;
  monPort?: number;
  auth?: 'none' | 'cephx';
  memstoreBytes?: number;
}): Promise<CephCluster> {
  const monPort = opts.monPort ?? 3300;
  const auth = opts.auth ?? 'none';
  const dir = join(tmpdir(), `zimage-ceph-${opts.name}-${process.pid}`);
  const env = {
    ...process.env,
    CEPH_DIR: dir,
    CEPH_AUTH: auth,
    MON_PORT: String(monPort),
    ...(opts.memstoreBytes ? { MEMSTORE_BYTES: String(opts.memstoreBytes) } : {}),
  };
  const t0 = performance.now();
  let out: { stdout: string; stderr: string };
  try {
    out = await run('bash', [SCRIPT, 'start'], { env, maxBuffer: 16 << 20, timeout: 600_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`cannot start the test Ceph cluster: ${e.message}\n${e.stderr ?? ''}`, { cause: err });
  }
  const startSeconds = (performance.now() - t0) / 1000;
  const vars = Object.fromEntries(
    out.stdout
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const installLine = /\[ceph-test-cluster\s+([\d.]+)s\] packages installed/.exec(out.stderr);
  const conf = vars.CEPH_CONF ?? join(dir, 'ceph.conf');
  const cliEnv = { ...process.env, CEPH_CONF: conf };
  const cli = (bin: string) => async (args: string[]) => (await run(bin, args, { env: cliEnv, maxBuffer: 64 << 20 })).stdout;
  let stopped = false;
  // If this process ends without stop() (a crash, a killed test run), leave no daemon behind.
  const onExit = (): void => cluster.crash();
  process.once('exit', onExit);
  const cluster: CephCluster = {
    dir,
    conf,
    monUrl: monPort === 3300 ? '127.0.0.1' : `127.0.0.1:${monPort}`,
    auth,
    ...(vars.CEPH_ADMIN_KEY ? { adminKey: vars.CEPH_ADMIN_KEY } : {}),
    startSeconds,
    installSeconds: installLine ? Number(installLine[1]) : 0,
    ceph: cli('ceph'),
    rbd: cli('rbd'),
    crash() {
      for (const name of ['osd.0', 'mon.a', 'mgr.x']) {
        try {
          const pid = Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8').trim());
          if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
        } catch {
          // not running
        }
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      await run('bash', [SCRIPT, 'stop'], { env, timeout: 120_000 }).catch((err) => {
        console.error(`stopping the test Ceph cluster failed: ${(err as Error).message}`);
      });
    },
  };
  return cluster;
}

/** PIDs of `rbd` processes that are children of this process (none may be left after a job ends). */
export function rbdChildren(): number[] {
  const mine = String(process.pid);
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && m[1] === 'rbd' && m[2] === mine) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}
