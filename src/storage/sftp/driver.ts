import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import { DIGEST_ALGORITHMS, opensslName, type DigestAlgorithm, type DigestResult } from '../../hashing/algorithms.js';
import { StorageError } from '../../lib/errors.js';
import type { BackupStorageDriver, Capacity, CopyStat, HashOptions, ImportTarget, OpenByteSource } from '../driver.js';
import type { DriverContext } from '../types.js';
import { collect, SshConnection, type RunResult, type WireStats } from './connection.js';
import { ABORT, COMMIT, CONNECT, DELETE, DISCARD, HASH, KILL, PREPARE, STAT, WRITE } from './scripts.js';
import { readableLength } from '../kit/byte-range.js';

/*
 * Layout under the directory `url` on the host, as for LocalBackupStorage:
 *   <url>/images/<imageUuid>/<imageUuid>.template             a committed image
 *   <url>/images/<imageUuid>/.<imageUuid>.template.<rnd>.part   an import in progress
 * Every remote command checks, with realpath on the host, that the path it touches is inside <url>.
 */

const IMAGES_DIR = 'images';
const UUID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const HEX_LENGTH: Record<DigestAlgorithm, number> = { MD5: 32, SHA1: 40, SHA256: 64, SHA512: 128, SM3: 64 };
/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

/** What an SftpBackupStorage row's config holds. `password`/`privateKey` never leave the driver. */
export interface SftpConfig {
  hostname: string;
  username: string;
  sshPort: number;
  password?: string;
  privateKey?: string;
  /** The host key recorded on first connect ('SHA256:…'). */
  hostKeyFingerprint?: string;
}

/** Reads a row's settings; a missing or malformed one is a StorageError('invalid') naming it. */
export function parseSftpConfig(config: Record<string, unknown>): SftpConfig {
  const str = (k: string): string | undefined => {
    const v = config[k];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new StorageError('invalid', `SFTP setting ${k} must be a string.`);
    return v;
  };
  const hostname = str('hostname');
  const username = str('username');
  if (!hostname) throw new StorageError('invalid', 'the SFTP backup storage has no hostname; set it with UpdateSftpBackupStorage.');
  if (!username) throw new StorageError('invalid', 'the SFTP backup storage has no username; set it with UpdateSftpBackupStorage.');
  const port = config.sshPort === undefined || config.sshPort === null ? 22 : Number(config.sshPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new StorageError('invalid', `sshPort ${String(config.sshPort)} is not a TCP port (1-65535).`);
  const password = str('password');
  const privateKey = str('privateKey');
  if (password === undefined && privateKey === undefined) {
    throw new StorageError(
      'invalid',
      'the SFTP backup storage has neither a password nor a private key; set one with UpdateSftpBackupStorage.',
    );
  }
  const hostKeyFingerprint = str('hostKeyFingerprint');
  return {
    hostname,
    username,
    sshPort: port,
    ...(password !== undefined ? { password } : {}),
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(hostKeyFingerprint !== undefined ? { hostKeyFingerprint } : {}),
  };
}

const isInside = (child: string, parent: string): boolean => child.startsWith(parent === '/' ? '/' : `${parent}/`) && child !== parent;

type SftpError = Error & { code?: number | string };

export class SftpDriver implements BackupStorageDriver {
  readonly type = 'SftpBackupStorage';
  readonly root: string;
  readonly conn: SshConnection;
  /** Payload bytes read through SFTP (headers for the inspector), for the benchmark. */
  sftpBytesRead = 0;
  private readonly configError: StorageError | undefined;
  private fingerprint: string | undefined;

  constructor(private readonly ctx: DriverContext) {
    let cfg: SftpConfig | undefined;
    let configError: StorageError | undefined;
    try {
      cfg = parseSftpConfig(ctx.config);
    } catch (err) {
      configError = err as StorageError;
    }
    const url = ctx.url;
    if (typeof url !== 'string' || !url.startsWith('/') || url.includes('\0')) {
      configError ??= new StorageError(
        'invalid',
        `backup storage directory "${String(url)}" is not an absolute path on the host; give a path starting with "/".`,
      );
    }
    this.configError = configError;
    this.root = typeof url === 'string' && url.startsWith('/') ? path.posix.normalize(url).replace(/(.)\/+$/, '$1') : '/';
    this.fingerprint = cfg?.hostKeyFingerprint;
    this.conn = new SshConnection(
      {
        hostname: cfg?.hostname ?? '',
        port: cfg?.sshPort ?? 22,
        username: cfg?.username ?? '',
        ...(cfg?.password !== undefined ? { password: cfg.password } : {}),
        ...(cfg?.privateKey !== undefined ? { privateKey: cfg.privateKey } : {}),
      },
      {
        expected: () => this.fingerprint,
        learn: async (fp) => {
          await this.ctx.saveConfig({ hostKeyFingerprint: fp });
          this.fingerprint = fp;
        },
      },
    );
  }

  /** The host key fingerprint in use (recorded or learned). */
  get hostKeyFingerprint(): string | undefined {
    return this.fingerprint;
  }

  stats(): WireStats & { sftpBytesRead: number } {
    return { ...this.conn.stats(), sftpBytesRead: this.sftpBytesRead };
  }

  installPathOf(imageUuid: string): string {
    return path.posix.join(this.root, IMAGES_DIR, imageUuid, `${imageUuid}.template`);
  }

  async connect(): Promise<Capacity> {
    this.checkConfig();
    const r = await this.conn.run(CONNECT, [this.root], { retry: true });
    this.check(r, 'checking the backup storage directory', this.root);
    const m = /^@C (\d+) (\d+)$/m.exec(r.stdout);
    if (!m)
      throw new StorageError('io', `df on ${this.conn.where} gave no capacity for ${this.root} (got "${r.stdout.trim().slice(0, 200)}").`);
    return { totalCapacity: Number(m[1]), availableCapacity: Number(m[2]) };
  }

  async createImport(imageUuid: string, opts: { expectedSize?: number } = {}): Promise<ImportTarget> {
    this.checkConfig();
    checkUuid(imageUuid);
    const need =
      opts.expectedSize !== undefined && Number.isSafeInteger(opts.expectedSize) && opts.expectedSize > 0 ? opts.expectedSize : 0;
    const r = await this.conn.run(PREPARE, [this.root, imageUuid, String(need)], { retry: true });
    this.check(r, 'creating the image directory', path.posix.join(this.root, IMAGES_DIR, imageUuid), need);
    const installPath = this.installPathOf(imageUuid);
    const dir = path.posix.dirname(installPath);
    const tempPath = path.posix.join(dir, `.${imageUuid}.template.${randomBytes(6).toString('hex')}.part`);
    let ch: ClientChannel;
    try {
      ch = await this.conn.channel(WRITE, [tempPath]);
    } catch (err) {
      await this.conn.run(ABORT, [tempPath, dir]).catch(() => undefined);
      throw err;
    }
    return new SftpImport(this, installPath, tempPath, dir, ch);
  }

  async open(installPath: string): Promise<OpenByteSource> {
    this.checkConfig();
    const { sftp, real } = await this.resolveSftp(installPath, 'opening the image');
    const handle = await new Promise<Buffer>((resolve, reject) =>
      sftp.open(real, 'r', (err, h) => (err ? reject(this.sftpError(err, 'opening the image', installPath)) : resolve(h))),
    );
    try {
      const st = await new Promise<{ size: number; isFile(): boolean }>((resolve, reject) =>
        sftp.fstat(handle, (err, s) => (err ? reject(this.sftpError(err, 'opening the image', installPath)) : resolve(s))),
      );
      if (!st.isFile()) throw new StorageError('invalid', `image ${installPath} on ${this.conn.where} is not a regular file.`);
      return new SftpByteSource(this, sftp, handle, st.size, installPath);
    } catch (err) {
      sftp.close(handle, () => undefined);
      throw err;
    }
  }

  async stat(installPath: string): Promise<CopyStat> {
    this.checkConfig();
    const { sftp, real } = await this.resolveSftp(installPath, 'opening the image');
    const st = await new Promise<{ size: number; mtime: number; isFile(): boolean }>((resolve, reject) =>
      sftp.stat(real, (err, s) => (err ? reject(this.sftpError(err, 'opening the image', installPath)) : resolve(s))),
    );
    if (!st.isFile()) throw new StorageError('invalid', `image ${installPath} on ${this.conn.where} is not a regular file.`);
    // Whole seconds: callers trust an mtime only once it is safely older than their inspection.
    return { size: st.size, mtimeMs: st.mtime * 1000 };
  }

  async readStream(installPath: string, opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    this.checkConfig();
    const { start, end, signal } = opts;
    for (const [name, v] of [
      ['start', start],
      ['end', end],
    ] as const) {
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
        throw new StorageError('invalid', `${name} must be a non-negative integer (got ${v}).`);
    }
    if (start !== undefined && end !== undefined && end < start)
      throw new StorageError('invalid', `range end ${end} is before start ${start}.`);
    signal?.throwIfAborted();
    const src = await this.open(installPath);
    const size = await src.size();
    const first = start ?? 0;
    const last = Math.min(end ?? size - 1, size - 1);
    let pos = first;
    const chunk = 1 << 20;
    const stream = new Readable({
      highWaterMark: chunk,
      read: () => {
        if (pos > last) {
          stream.push(null);
          return;
        }
        const n = Math.min(chunk, last - pos + 1);
        src.read(pos, n).then(
          (bytes) => {
            if (bytes.length === 0) return void stream.push(null);
            pos += bytes.length;
            stream.push(bytes);
          },
          (err: unknown) => stream.destroy(err as Error),
        );
      },
      destroy: (err, cb) => {
        src.close().then(
          () => cb(err),
          () => cb(err),
        );
      },
    });
    stream.once('end', () => void src.close().catch(() => undefined));
    if (signal) {
      const onAbort = (): void => void stream.destroy(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return stream;
  }

  async allocatedSize(installPath: string): Promise<number> {
    this.checkConfig();
    const p = this.confine(installPath);
    const r = await this.conn.run(STAT, [this.root, p], { retry: true });
    this.check(r, 'measuring the image', installPath);
    const m = /^@A (\d+) (\d+) (\d+)$/m.exec(r.stdout);
    if (!m) throw new StorageError('io', `stat on ${this.conn.where} gave no size for ${installPath}.`);
    return Number(m[1]) * Number(m[2]);
  }

  async delete(installPath: string): Promise<void> {
    this.checkConfig();
    const p = this.confine(installPath);
    const r = await this.conn.run(DELETE, [this.root, p], { retry: true });
    this.check(r, 'deleting the image', installPath);
  }

  async discard(imageUuid: string): Promise<void> {
    this.checkConfig();
    checkUuid(imageUuid);
    const r = await this.conn.run(DISCARD, [this.root, imageUuid], { retry: true });
    this.check(r, 'discarding the image', path.posix.join(this.root, IMAGES_DIR, imageUuid));
  }

  /**
   * Runs `openssl dgst` on the host, next to the bytes: only the digests and progress lines cross the
   * network. On abort the remote job is killed (its shell traps TERM, kills openssl and waits for it) and
   * this returns only once the remote command has ended.
   */
  async hash(installPath: string, algorithms: readonly DigestAlgorithm[], opts: HashOptions = {}): Promise<DigestResult> {
    this.checkConfig();
    const algs = [...new Set(algorithms)];
    if (algs.length === 0) throw new StorageError('invalid', 'no digest algorithm was asked for.');
    for (const a of algs) {
      if (!(DIGEST_ALGORITHMS as readonly string[]).includes(a))
        throw new StorageError('invalid', `unsupported digest algorithm ${String(a)}.`);
    }
    const p = this.confine(installPath);
    const { signal, onProgress } = opts;
    signal?.throwIfAborted();
    const ch = await this.conn.channel(HASH, [this.root, p, ...algs.map(opensslName)], signal, true);
    let pid: number | undefined;
    let size = 0;
    let killing: Promise<unknown> | undefined;
    const kill = (): void => {
      if (killing || pid === undefined) return;
      killing = this.conn.run(KILL, [String(pid)], { timeoutMs: 10_000 }).catch(() => undefined);
    };
    const result = collect(ch, this.conn.where, {
      timeoutMs: 2 ** 31 - 1,
      onStderrLine: (line) => {
        const [tag, value] = line.split(' ');
        const n = Number(value);
        if (!Number.isSafeInteger(n) || n < 0) return;
        if (tag === '@PID') {
          pid = n;
          if (signal?.aborted) kill();
        } else if (tag === '@S') {
          size = n;
          onProgress?.(0, size);
        } else if (tag === '@P') {
          onProgress?.(n, size);
        }
      },
    });
    let abortTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      kill();
      // The pid not known yet is killed when it arrives. If the kill cannot be delivered, closing the
      // channel makes the remote watcher (or the shell's next write) end the job.
      abortTimer = setTimeout(() => ch.close(), 5_000);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let r: RunResult;
    try {
      r = await result;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (abortTimer) clearTimeout(abortTimer);
      await killing;
    }
    if (signal?.aborted) throw signal.reason;
    if (r.failure) this.check(r, 'hashing the image', installPath);
    if (r.code !== 0) {
      const unsupported = /unknown option or message digest|unsupported/i.test(r.stderr);
      if (unsupported) {
        throw new StorageError(
          'unsupported',
          `openssl on ${this.conn.where} cannot compute ${algs.join('/')}: ${firstLine(r.stderr)}; install a full OpenSSL 3.`,
        );
      }
      const detail = r.stderr ? `: ${firstLine(r.stderr)}` : r.signal ? ` (killed by SIG${r.signal})` : ` (exit status ${r.code})`;
      throw new StorageError('io', `hashing ${installPath} on ${this.conn.where} failed${detail}.`);
    }
    const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
    const out: DigestResult = {};
    for (const [i, alg] of algs.entries()) {
      const hex = lines[i]?.trim().split(/\s+/)[0]?.toLowerCase();
      if (!hex || !/^[0-9a-f]+$/.test(hex) || hex.length !== HEX_LENGTH[alg]) {
        throw new StorageError(
          'io',
          `openssl on ${this.conn.where} gave no ${alg} digest for ${installPath} (got "${r.stdout.trim().slice(0, 200)}").`,
        );
      }
      out[alg] = hex;
    }
    onProgress?.(size, size);
    return out;
  }

  async close(): Promise<void> {
    await this.conn.close();
  }

  // ------------------------------------------------------------------------------------------------

  private checkConfig(): void {
    if (this.configError) throw this.configError;
  }

  /** The normalised install path, which must lie strictly inside the root as written. */
  confine(installPath: string): string {
    if (typeof installPath !== 'string' || installPath === '' || installPath.includes('\0')) {
      throw new StorageError('invalid', `install path "${String(installPath)}" is not a valid path.`);
    }
    const p = path.posix.resolve(this.root, installPath);
    if (!isInside(p, this.root)) {
      throw new StorageError(
        'invalid',
        `install path ${installPath} is outside the backup storage directory ${this.root}; refusing to touch it.`,
      );
    }
    return p;
  }

  /** The SFTP session and the real path of `installPath`, checked (symbolic links resolved) to be inside the root. */
  private async resolveSftp(installPath: string, what: string): Promise<{ sftp: SFTPWrapper; real: string }> {
    const p = this.confine(installPath);
    const sftp = await this.conn.sftp();
    const realpath = (q: string): Promise<string> =>
      new Promise((resolve, reject) => sftp.realpath(q, (err, r) => (err ? reject(err) : resolve(r))));
    const realRoot = await realpath(this.root).catch((err: SftpError) => {
      if (err.code === SFTP_NO_SUCH_FILE) {
        throw new StorageError(
          'unreachable',
          `backup storage directory ${this.root} does not exist on ${this.conn.where}; create it or fix the backup storage url.`,
        );
      }
      throw this.sftpError(err, what, this.root);
    });
    const real = await realpath(p).catch((err: SftpError) => {
      throw this.sftpError(err, what, installPath);
    });
    if (!isInside(real, realRoot)) {
      throw new StorageError(
        'invalid',
        `install path ${installPath} leads outside the backup storage directory ${this.root} (symbolic link); refusing to touch it.`,
      );
    }
    return { sftp, real };
  }

  sftpError(err: unknown, what: string, p: string): StorageError {
    if (err instanceof StorageError) return err;
    const e = err as SftpError;
    if (e?.code === SFTP_NO_SUCH_FILE) return new StorageError('not-found', `${what}: ${p} does not exist on ${this.conn.where}.`);
    if (e?.code === SFTP_PERMISSION_DENIED)
      return new StorageError(
        'permission',
        `${what}: permission denied on ${p} on ${this.conn.where}; give ${this.conn.where.split('@')[0]} read access to it.`,
      );
    return new StorageError('io', `${what}: SFTP error on ${p} on ${this.conn.where} (${e?.message ?? String(err)}).`);
  }

  /** Turns a script's failure into a StorageError a user can act on (does nothing on success). */
  check(r: RunResult, what: string, p: string, need = 0): void {
    if (!r.failure && r.code === 0) return;
    const where = this.conn.where;
    const user = where.split('@')[0];
    const root = this.root;
    const [code, ...rest] = r.failure ?? [];
    const detail = rest.join(' ') || r.stderr;
    const said = detail ? ` (${firstLine(detail)})` : '';
    switch (code) {
      case 'noroot':
        throw new StorageError(
          'unreachable',
          `backup storage directory ${root} does not exist on ${where}; create it (mkdir -p ${root}) or fix the backup storage url.`,
        );
      case 'noaccess':
        throw new StorageError(
          'permission',
          `backup storage directory ${root} on ${where} cannot be accessed (permission denied on it or a parent); fix the permissions for ${user}.`,
        );
      case 'notdir':
        throw new StorageError(
          'unreachable',
          `backup storage path ${root} on ${where} is not a directory; point the backup storage url at a directory.`,
        );
      case 'tools':
        throw new StorageError(
          'unsupported',
          `${where} lacks tools zimage needs on the host: ${rest.join(', ')}; install them (Debian/Ubuntu: apt-get install openssl coreutils sed) and reconnect.`,
        );
      case 'nospace':
        throw new StorageError('no-space', `backup storage directory ${root} on ${where} is full; free space or add capacity.`);
      case 'readonly':
        throw new StorageError(
          'permission',
          `backup storage directory ${root} on ${where} is on a read-only file system; mount it read-write.`,
        );
      case 'notwritable':
        throw new StorageError(
          'permission',
          `backup storage directory ${root} on ${where} is not writable by ${user}; give that user write access to it.`,
        );
      case 'needspace':
        throw new StorageError(
          'no-space',
          `backup storage directory ${root} on ${where} has ${rest[0] ?? 'too few'} bytes free but the image needs ${need}; free space or use another backup storage.`,
        );
      case 'notfound':
        throw new StorageError('not-found', `${what}: ${p} does not exist on ${where}.`);
      case 'notfile':
        throw new StorageError('invalid', `${what}: ${p} on ${where} is not a regular file.`);
      case 'noread':
        throw new StorageError('permission', `${what}: ${p} on ${where} is not readable by ${user}.`);
      case 'isdir':
        throw new StorageError('invalid', `install path ${p} is a directory, not an image file; nothing was deleted.`);
      case 'outside':
        throw new StorageError(
          'invalid',
          `install path ${p} is outside the backup storage directory ${root} on ${where} (symbolic links included); refusing to touch it.`,
        );
      case 'imagesoutside':
      case 'diroutside':
        throw new StorageError(
          'invalid',
          `${p} on ${where} leads outside the backup storage directory ${root} (symbolic link); remove it.`,
        );
      case 'mkdir':
      case 'io':
      case 'df':
      case 'invalid':
      case undefined:
      default: {
        if (/No space left|quota exceeded/i.test(detail)) {
          throw new StorageError(
            'no-space',
            `${what}: no space left on the file system of ${root} on ${where}; free space or add capacity.`,
          );
        }
        if (/Read-only file system/i.test(detail))
          throw new StorageError('permission', `${what}: ${p} on ${where} is on a read-only file system; mount it read-write.`);
        if (/Permission denied|Operation not permitted/i.test(detail)) {
          throw new StorageError('permission', `${what}: permission denied on ${p} on ${where}; give ${user} read/write access to it.`);
        }
        const status = r.code === null ? (r.signal ? ` (killed by SIG${r.signal})` : '') : ` (exit status ${r.code})`;
        throw new StorageError('io', `${what}: ${p} on ${where} failed${said || status}.`);
      }
    }
  }
}

const firstLine = (s: string): string => s.trim().split('\n')[0]!.slice(0, 300);

function checkUuid(imageUuid: string): void {
  if (typeof imageUuid !== 'string' || !UUID_RE.test(imageUuid)) {
    throw new StorageError(
      'invalid',
      `image uuid "${String(imageUuid)}" is not usable as a file name (letters, digits, '-' and '_' only).`,
    );
  }
}

/**
 * An import in progress: the bytes go into `dd of=<temp> conv=excl,fsync` on the host. The stream
 * finishes only once dd has written and synced everything; commit() renames, abort() removes.
 */
class SftpImport implements ImportTarget {
  readonly stream: Writable;
  private state: 'open' | 'committed' | 'aborted' = 'open';
  private failure: StorageError | undefined;
  private readonly done: Promise<void>;
  private channelClosed = false;

  constructor(
    private readonly driver: SftpDriver,
    readonly installPath: string,
    private readonly tempPath: string,
    private readonly dir: string,
    private readonly ch: ClientChannel,
  ) {
    const where = driver.conn.where;
    let stderr = '';
    let pending = '';
    let code: number | null | undefined;
    let marked: number | undefined;
    let sig: string | undefined;
    ch.stderr.on('data', (d: Buffer) => {
      pending += d.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (line.startsWith('@X ')) marked = Number(line.slice(3));
        else if (stderr.length < 4096) stderr += `${line}\n`;
      }
    });
    ch.on('data', () => undefined);
    ch.on('exit', (c: number | null, s?: string) => {
      code = c;
      sig = s;
    });
    ch.on('error', () => undefined);
    this.done = new Promise<void>((resolve, reject) => {
      ch.once('close', () => {
        this.channelClosed = true;
        // The exit-status message may be missing under load; the script's own last line then tells.
        if (code === undefined && marked !== undefined && Number.isInteger(marked)) code = marked;
        if (code === 0) return resolve();
        let err: StorageError;
        if (code === undefined) {
          err = new StorageError(
            'unreachable',
            `the SSH connection to ${where} was lost while writing ${installPath}; check that the host and its sshd are up.`,
          );
        } else if (/No space left|quota exceeded/i.test(stderr)) {
          err = new StorageError(
            'no-space',
            `writing the image: no space left on the file system of ${driver.root} on ${where}; free space or add capacity.`,
          );
        } else if (/Permission denied|Read-only/i.test(stderr)) {
          err = new StorageError(
            'permission',
            `writing the image: ${firstLine(stderr)} on ${where}; give ${where.split('@')[0]} write access to ${driver.root}.`,
          );
        } else {
          err = new StorageError(
            'io',
            `writing the image ${installPath} on ${where} failed${stderr ? `: ${firstLine(stderr)}` : sig ? ` (SIG${sig})` : ` (exit status ${code})`}.`,
          );
        }
        this.failure ??= err;
        reject(err);
      });
    });
    this.done.catch((err: StorageError) => {
      // The writer died under us (disk full, connection lost): nothing usable is left; remove it first.
      if (this.state === 'open') void this.cleanup(err).catch(() => undefined);
    });

    let waiting: ((err?: Error | null) => void) | undefined;
    const onDrain = (): void => {
      const cb = waiting;
      waiting = undefined;
      cb?.();
    };
    ch.on('drain', onDrain);
    this.done.then(
      () => undefined,
      (err: Error) => {
        const cb = waiting;
        waiting = undefined;
        cb?.(err);
      },
    );
    const write = (chunk: Buffer, cb: (err?: Error | null) => void): void => {
      if (this.failure) return cb(this.failure);
      if (this.channelClosed) return cb(new StorageError('io', `the writer of ${installPath} on ${where} has ended.`));
      if (ch.write(chunk)) return cb();
      waiting = cb;
    };
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => write(chunk, cb),
      writev: (chunks, cb) => write(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), cb),
      final: (cb) => {
        if (this.failure) return cb(this.failure);
        ch.end();
        this.done.then(
          () => cb(),
          (err: Error) => cb(err),
        );
      },
    });
  }

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.failure) throw this.failure;
    if (this.state === 'aborted') throw new StorageError('invalid', `import of ${this.installPath} was aborted; it cannot be committed.`);
    const s = this.stream;
    try {
      if (!s.writableFinished) {
        if (!s.writableEnded) s.end();
        await finished(s);
      }
      await this.done;
    } catch (err) {
      await this.cleanup();
      throw this.failure ?? err;
    }
    try {
      const r = await this.driver.conn.run(COMMIT, [this.tempPath, this.installPath], { retry: true });
      this.driver.check(r, 'committing the image', this.installPath);
    } catch (err) {
      await this.cleanup();
      throw err;
    }
    this.state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.state === 'committed') return;
    // Also when a failed write already started the cleanup: return once the host is clean.
    await this.cleanup();
  }

  /** Stops the writer, removes the temporary file (and the image directory if empty), ends the stream. */
  private cleaning: Promise<void> | undefined;
  private cleanup(err?: Error): Promise<void> {
    this.cleaning ??= this.doCleanup(err);
    return this.cleaning;
  }

  private async doCleanup(err?: Error): Promise<void> {
    this.state = 'aborted';
    if (!this.channelClosed) {
      this.ch.close();
      await Promise.race([this.done.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    if (!this.stream.destroyed) this.stream.destroy(err);
    const r = await this.driver.conn.run(ABORT, [this.tempPath, this.dir], { retry: true });
    this.driver.check(r, 'removing the partial image', this.tempPath);
  }
}

/** Positional reads over an SFTP handle; reads never go past the end of the file. */
class SftpByteSource implements OpenByteSource {
  private closed = false;

  constructor(
    private readonly driver: SftpDriver,
    private readonly sftp: SFTPWrapper,
    private readonly handle: Buffer,
    private readonly length: number,
    private readonly name: string,
  ) {}

  async size(): Promise<number> {
    this.assertOpen();
    return this.length;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen();
    const n = readableLength(this.name, offset, length, this.length);
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const bytesRead = await new Promise<number>((resolve, reject) =>
        this.sftp.read(this.handle, buf, got, n - got, offset + got, (err, nb) =>
          err ? reject(this.driver.sftpError(err, 'reading the image', this.name)) : resolve(nb),
        ),
      );
      if (bytesRead === 0) break;
      got += bytesRead;
      this.driver.sftpBytesRead += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, got);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.sftp.close(this.handle, () => resolve()));
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('invalid', `image ${this.name} was already closed.`);
  }
}
