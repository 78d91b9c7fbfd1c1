import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import type { DigestAlgorithm, DigestResult } from '../../hashing/algorithms.js';
import { StorageError } from '../../lib/errors.js';
import type { BackupStorageDriver, Capacity, CopyStat, HashOptions, OpenByteSource, ResumableImport } from '../driver.js';
import { checkByteRange } from '../kit/byte-range.js';
import { isStrictlyInside } from '../kit/inside.js';
import { checkImageUuid, isTempNameOf } from '../kit/image-uuid.js';
import { rangeStream } from '../kit/range-stream.js';
import type { DriverContext } from '../types.js';
import { SftpByteSource } from './byte-source.js';
import { parseSftpConfig, type SftpConfig } from './config.js';
import { SshConnection, type RunResult, type WireStats } from './connection.js';
import { SftpImport } from './import.js';
import { checkRun, SFTP_NO_SUCH_FILE, sftpError, type RemoteScope, type SftpError } from './remote-errors.js';
import { hashAlgorithms, remoteHash } from './remote-hash.js';
import { ABORT, APPEND, CONNECT, DELETE, DISCARD, PREPARE, REOPEN, STAT, WRITE } from './scripts.js';

export { parseSftpConfig, type SftpConfig } from './config.js';

/*
 * Layout under the directory `url` on the host, as for LocalBackupStorage:
 *   <url>/images/<imageUuid>/<imageUuid>.template             a committed image
 *   <url>/images/<imageUuid>/.<imageUuid>.template.<rnd>.part   an import in progress
 * Every remote command checks, with realpath on the host, that the path it touches is inside <url>.
 */

const IMAGES_DIR = 'images';

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

  async createImport(imageUuid: string, opts: { expectedSize?: number } = {}): Promise<ResumableImport> {
    this.checkConfig();
    checkImageUuid(imageUuid, 'a file name');
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
    return new SftpImport(this.conn, this.scope, installPath, tempPath, dir, ch);
  }

  async resumeImport(imageUuid: string, tempName: string, offset: number): Promise<ResumableImport> {
    this.checkConfig();
    checkImageUuid(imageUuid, 'a file name');
    if (!isTempNameOf(imageUuid, tempName) || !Number.isSafeInteger(offset) || offset < 0) {
      throw new StorageError('invalid', `[${String(tempName)}] is not the partial bytes of an import of image ${imageUuid}.`);
    }
    const installPath = this.installPathOf(imageUuid);
    const dir = path.posix.dirname(installPath);
    const tempPath = path.posix.join(dir, tempName);
    const r = await this.conn.run(REOPEN, [this.root, tempPath, String(offset)], { retry: true });
    if (r.failure?.[0] === 'short') {
      throw new StorageError(
        'invalid',
        `the partial image ${tempPath} on ${this.conn.where} has ${r.failure[1]} bytes, fewer than the ${offset} recorded.`,
      );
    }
    this.check(r, 'reopening the partial image', tempPath);
    const ch = await this.conn.channel(APPEND, [tempPath]);
    return new SftpImport(this.conn, this.scope, installPath, tempPath, dir, ch, offset, (p, end) => this.readStream(p, { end }));
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
    checkByteRange(start, end);
    signal?.throwIfAborted();
    const src = await this.open(installPath);
    return rangeStream(src, {
      ...(start !== undefined ? { start } : {}),
      ...(end !== undefined ? { end } : {}),
      ...(signal ? { signal } : {}),
      chunkSize: 1 << 20,
    });
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
    checkImageUuid(imageUuid, 'a file name');
    const r = await this.conn.run(DISCARD, [this.root, imageUuid], { retry: true });
    this.check(r, 'discarding the image', path.posix.join(this.root, IMAGES_DIR, imageUuid));
  }

  /** Runs `openssl dgst` on the host, next to the bytes (remote-hash.ts). */
  async hash(installPath: string, algorithms: readonly DigestAlgorithm[], opts: HashOptions = {}): Promise<DigestResult> {
    this.checkConfig();
    const algs = hashAlgorithms(algorithms);
    const p = this.confine(installPath);
    return remoteHash(this.conn, this.scope, { p, installPath }, algs, opts);
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
    if (!isStrictlyInside(p, this.root)) {
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
    if (!isStrictlyInside(real, realRoot)) {
      throw new StorageError(
        'invalid',
        `install path ${installPath} leads outside the backup storage directory ${this.root} (symbolic link); refusing to touch it.`,
      );
    }
    return { sftp, real };
  }

  /** Where messages point: the host and the backup storage directory. */
  get scope(): RemoteScope {
    return { where: this.conn.where, root: this.root };
  }

  sftpError(err: unknown, what: string, p: string): StorageError {
    return sftpError(err, this.scope, what, p);
  }

  /** Turns a script's failure into a StorageError a user can act on (does nothing on success). */
  check(r: RunResult, what: string, p: string, need = 0): void {
    checkRun(r, this.scope, what, p, need);
  }
}
