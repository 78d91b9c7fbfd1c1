import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { StorageError } from '../../lib/errors.js';
import { clientSettings, type CephConfig } from './config.js';
import type { Exit } from './import.js';

/** A running `rbd` command: its process, its end, and the tail of its stderr. */
export interface RbdRun {
  proc: ChildProcess;
  exit: Promise<Exit>;
  stderr: () => string;
}

/**
 * Runs the `rbd` command of ceph-common for one storage, with argument lists (never a shell); the cephx key
 * goes in CEPH_ARGS, not on the command line. Keeps its children so close() can end them.
 */
export class RbdRunner {
  private checked = false;
  private readonly children = new Set<ChildProcess>();

  constructor(
    private readonly bin: string,
    private readonly config: CephConfig,
    private readonly user: string,
  ) {}

  /** Fails with a clear "install ceph-common" when the command is missing. */
  async check(): Promise<void> {
    if (this.checked) return;
    await new Promise<void>((resolve, reject) => {
      const p = spawn(this.bin, ['--version'], { stdio: 'ignore' });
      p.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new StorageError(
            'unsupported',
            err.code === 'ENOENT'
              ? `the rbd command is not installed on the zimage host; install the Debian package ceph-common (apt-get install ceph-common).`
              : `cannot run the rbd command: ${err.message}`,
          ),
        ),
      );
      p.once('exit', () => resolve());
    });
    this.checked = true;
  }

  private commonArgs(): string[] {
    const args = ['--conf', this.config.cephConf ?? '/dev/null', '--id', this.user];
    for (const [k, v] of Object.entries(clientSettings(this.config))) args.push(`--${k.replace(/_/g, '-')}`, v);
    return args;
  }

  /**
   * Runs `rbd <args>`; stdout is a pipe to Node, or a file descriptor or socket the child writes to directly.
   * `extraFds` become the child's descriptors 3, 4, … (e.g. a file rbd reads as /dev/fd/3).
   */
  run(args: string[], stdin: 'pipe' | 'ignore', stdout: 'pipe' | 'ignore' | number | Socket = 'pipe', extraFds: number[] = []): RbdRun {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
    if (this.config.cephKey) env.CEPH_ARGS = `--key=${this.config.cephKey}`;
    const proc = spawn(this.bin, [...this.commonArgs(), ...args], { stdio: [stdin, stdout, 'pipe', ...extraFds], env });
    this.children.add(proc);
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-8000);
    });
    const exit = new Promise<Exit>((resolve) => {
      proc.once('error', (e: NodeJS.ErrnoException) => {
        err += `\n${e.code === 'ENOENT' ? 'the rbd command is not installed (Debian package ceph-common)' : e.message}`;
        resolve({ code: 127, signal: null });
      });
      proc.once('close', (code, signal) => resolve({ code, signal }));
    }).finally(() => this.children.delete(proc));
    return { proc, exit, stderr: () => err };
  }

  /** SIGKILLs every rbd still running. */
  killAll(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
