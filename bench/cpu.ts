/**
 * CPU seconds spent by this process, its finished children and some other processes (e.g. Ceph daemons),
 * from /proc (Linux). On a machine shared with other jobs wall times swing with the load; CPU seconds do
 * not, so a bench can say how much work each way of doing the same thing costs.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;
function hz(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return ticksPerSecond;
}

/** utime, stime, cutime, cstime of a process in seconds; zeros when it is gone. */
function statTimes(pid: number | 'self'): [number, number, number, number] {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    const t = (i: number): number => Number(f[i - 3]) / hz();
    return [t(14), t(15), t(16), t(17)];
  } catch {
    return [0, 0, 0, 0];
  }
}

/** Live children of this process whose command line contains `needle` (e.g. a long-lived helper). */
export function childPids(needle: string): number[] {
  const me = String(process.pid);
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (s.slice(s.lastIndexOf(')') + 2).split(' ')[1] !== me) continue;
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

export interface CpuSnapshot {
  /** This process, all threads. */
  self: number;
  /** Children this process has waited for (finished `rbd`, `openssl` runs). */
  children: number;
  /** Each of the other processes asked for. */
  others: number;
}

/** A snapshot now; others() is called each time (a helper process may be restarted). */
export function cpuSnapshot(others: () => number[]): CpuSnapshot {
  const [u, s, cu, cs] = statTimes('self');
  let o = 0;
  for (const pid of others()) {
    const [ou, os] = statTimes(pid);
    o += ou + os;
  }
  return { self: u + s, children: cu + cs, others: o };
}

/** CPU seconds between two snapshots; `withSelf` false leaves out this process (e.g. a bench idling while a command runs). */
export function cpuSpent(a: CpuSnapshot, b: CpuSnapshot, withSelf = true): number {
  return (withSelf ? b.self - a.self : 0) + (b.children - a.children) + (b.others - a.others);
}
