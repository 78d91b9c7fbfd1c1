import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { StorageError } from '../../lib/errors.js';

/** An error answered by the helper: librados/librbd's errno and text. */
export class HelperError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'HelperError';
  }
}

export interface HelperSettings {
  /** ceph.conf to read, or undefined for none (/dev/null). */
  confFile?: string;
  user: string;
  pool: string;
  /** librados settings, including the secret key when there is one (sent on stdin, never on argv). */
  conf: Record<string, string>;
  timeoutSeconds: number;
  /** Python interpreter that has Debian's python3-rados/python3-rbd. */
  python: string;
}

interface Pending {
  id: number;
  op: string;
  resolve: (v: { r: any; data: Buffer }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * rados_helper.py: next to this module when run from src/ (tsx), or in the package's src/ when run from
 * dist/src/storage/ceph/ (tsc does not copy it).
 */
export function helperScript(): string {
  for (const rel of ['./rados_helper.py', '../../../../src/storage/ceph/rados_helper.py']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new StorageError(
    'unsupported',
    `rados_helper.py is missing next to ${fileURLToPath(import.meta.url)} and in the package's src/storage/ceph/; reinstall zimage.`,
  );
}

/** Idle helpers exit after this long; the next call starts a new one (≈90 ms). */
const IDLE_MS = 60_000;

/** Debian's interpreter first: a pyenv/venv python3 earlier on PATH does not have the Ceph bindings. */
export function defaultPython(): string {
  const env = process.env.ZIMAGE_CEPH_PYTHON;
  if (env) return env;
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Why the monitors refused us, from librados' "handle_auth_bad_method … i only support [methods]". */
export function authHint(clientMethods: string, stderr: string): string {
  // auth methods: 1 = none, 2 = cephx
  if (clientMethods === '1')
    return 'the cluster requires cephx authentication but no key was given; set cephUser and cephKey (or a keyring)';
  if (/allowed_methods \[1\]/.test(stderr)) return 'the cluster uses auth none but cephx credentials were given; remove them';
  return 'the monitors refused the cephx key (wrong key, or no such user)';
}

type HelperProc = ChildProcessByStdio<Writable, Readable, Readable>;

/**
 * One running helper process (rados_helper.py) with its cluster connection. Requests are pipelined
 * and answered in order. The process is started on first use, ends after IDLE_MS without requests, and
 * never keeps Node's event loop alive while idle.
 */
export class RadosHelper {
  private proc: HelperProc | undefined;
  private starting: Promise<HelperProc> | undefined;
  private pending: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private header: { id: number; ok: boolean; n: number; r?: unknown; errno?: number; error?: string } | undefined;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private stderr = '';
  /** Cluster fsid reported by the running helper's connection. */
  fsid: string | undefined;

  constructor(private readonly settings: HelperSettings) {}

  /**
   * Sends one request (with `payload` bytes after its line, e.g. a write); resolves with its result (and payload
   * bytes), rejects with HelperError or StorageError.
   */
  async call<T = any>(
    op: string,
    args: Record<string, unknown> = {},
    timeoutMs?: number,
    payload?: Buffer,
  ): Promise<{ r: T; data: Buffer }> {
    const proc = await this.start();
    this.clearIdle();
    const id = this.nextId++;
    const ms = timeoutMs ?? (this.settings.timeoutSeconds + 5) * 1000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The helper is stuck in librados beyond its own timeouts: replace it.
        this.kill(new StorageError('unreachable', `the Ceph cluster did not answer a ${op} request within ${Math.round(ms / 1000)} s.`));
      }, ms);
      this.pending.push({ id, op, resolve, reject, timer });
      this.ref(true);
      proc.stdin.write(JSON.stringify({ id, op, ...args, ...(payload?.length ? { n: payload.length } : {}) }) + '\n');
      if (payload?.length) proc.stdin.write(payload);
    });
  }

  /** Ends the helper (EOF: it closes its images and the cluster connection). */
  async close(): Promise<void> {
    this.clearIdle();
    const p = this.proc ?? (await this.starting?.catch(() => undefined));
    if (!p) return;
    this.proc = undefined;
    this.starting = undefined;
    this.fail(new StorageError('io', 'the Ceph connection was closed.'));
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.stdin.end();
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  }

  private start(): Promise<HelperProc> {
    if (this.starting) return this.starting;
    if (this.proc) return Promise.resolve(this.proc);
    this.starting = this.spawnHelper().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async spawnHelper(): Promise<HelperProc> {
    const s = this.settings;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
    let proc: HelperProc;
    try {
      proc = spawn(s.python, ['-I', '-B', helperScript()], { stdio: ['pipe', 'pipe', 'pipe'], env });
    } catch (err) {
      throw new StorageError('unsupported', `cannot start ${s.python} (${(err as Error).message}); install python3 and ceph-common.`);
    }
    this.stderr = '';
    this.buf = Buffer.alloc(0);
    this.header = undefined;
    proc.stdout.on('data', (d: Buffer) => this.onData(d));
    let connecting = true;
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
      // A refused authentication makes librados retry until its mount timeout; its stderr says why at once.
      const m = connecting ? /handle_auth_bad_method[^\n]*i only support \[([\d,]*)\]/.exec(this.stderr) : null;
      if (m) {
        connecting = false;
        this.kill(new HelperError(13, authHint(m[1] ?? '', this.stderr)));
      }
    });
    proc.stdin.on('error', () => undefined); // EPIPE when it died: reported through 'exit'
    const ready = new Promise<{ r: any; data: Buffer }>((resolve, reject) => {
      const ms = (s.timeoutSeconds + 5) * 1000;
      const timer = setTimeout(
        () => this.kill(new StorageError('unreachable', `no Ceph connection after ${Math.round(ms / 1000)} s.`)),
        ms,
      );
      this.pending.push({ id: 0, op: 'connect', resolve, reject, timer });
    });
    proc.once('error', (err: NodeJS.ErrnoException) => {
      if (this.proc !== undefined && this.proc !== proc) return;
      this.fail(
        err.code === 'ENOENT'
          ? new StorageError(
              'unsupported',
              `${s.python} is not installed; zimage's Ceph driver needs python3 with python3-rados and python3-rbd (Debian package ceph-common).`,
            )
          : new StorageError('io', `the Ceph helper failed: ${err.message}`),
      );
    });
    // 'close', not 'exit': every answer it wrote (e.g. why it could not connect) is read first.
    proc.once('close', (code, signal) => {
      // A process already replaced or closed on purpose had its requests answered then; the ones pending
      // now belong to its successor and must not be failed by this one's exit.
      if (this.proc !== proc) return;
      this.proc = undefined;
      const tail = this.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 500);
      this.fail(new StorageError('io', `the Ceph helper exited (${signal ?? `status ${code}`})${tail ? `: ${tail}` : ''}.`));
    });
    proc.stdin.write(
      JSON.stringify({ confFile: s.confFile ?? null, user: s.user, pool: s.pool, conf: s.conf, timeout: s.timeoutSeconds }) + '\n',
    );
    this.proc = proc;
    this.ref(true);
    try {
      const hello = await ready;
      connecting = false;
      this.fsid = hello.r?.fsid;
    } catch (err) {
      this.proc = undefined;
      if (proc.exitCode === null) proc.kill('SIGKILL');
      throw err;
    } finally {
      this.maybeIdle();
    }
    return proc;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (!this.header) {
        const nl = this.buf.indexOf(10);
        if (nl < 0) return;
        const line = this.buf.subarray(0, nl).toString();
        this.buf = this.buf.subarray(nl + 1);
        try {
          this.header = JSON.parse(line);
        } catch {
          this.kill(new StorageError('io', `the Ceph helper sent garbage: ${line.slice(0, 200)}`));
          return;
        }
      }
      const h = this.header!;
      if (this.buf.length < h.n) return;
      const data = Buffer.from(this.buf.subarray(0, h.n));
      this.buf = this.buf.subarray(h.n);
      this.header = undefined;
      const p = this.pending.shift();
      if (!p) continue;
      clearTimeout(p.timer);
      if (h.ok) p.resolve({ r: h.r, data });
      else p.reject(new HelperError(h.errno ?? 5, h.error ?? 'unknown error'));
      this.maybeIdle();
    }
  }

  /** Rejects every pending request. */
  private fail(err: Error): void {
    const all = this.pending;
    this.pending = [];
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.maybeIdle();
  }

  private kill(err: Error): void {
    const p = this.proc;
    this.proc = undefined;
    this.fail(err);
    if (p && p.exitCode === null) p.kill('SIGKILL');
  }

  private maybeIdle(): void {
    if (this.pending.length > 0) return;
    this.ref(false);
    this.clearIdle();
    if (!this.proc) return;
    this.idleTimer = setTimeout(() => void this.close(), IDLE_MS);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Keeps the event loop alive only while requests are pending. */
  private ref(on: boolean): void {
    const p = this.proc;
    if (!p) return;
    const streams = [p.stdin, p.stdout, p.stderr] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
    if (on) {
      p.ref();
      for (const s of streams) s.ref?.();
    } else {
      p.unref();
      for (const s of streams) s.unref?.();
    }
  }
}
