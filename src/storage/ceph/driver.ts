import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { DigestAlgorithm, DigestResult } from '../../hashing/algorithms.js';
import { StorageError } from '../../lib/errors.js';
import type {
  BackupStorageDriver,
  Capacity,
  FileImportTarget,
  HashOptions,
  ImportTarget,
  OpenByteSource,
  ResumableImport,
} from '../driver.js';
import type { DriverContext } from '../types.js';
import { clientSettings, DEFAULT_TIMEOUT_SECONDS, parseCephConfig, type CephConfig, type CephDriverOptions } from './config.js';
import { cephError, ERRNO, rbdCommandError, type CephErrorContext } from './errors.js';
import { defaultPython, HelperError, RadosHelper } from './helper.js';
import { RbdByteSource, READ_CHUNK } from './byte-source.js';
import { checkByteRange } from '../kit/byte-range.js';
import { checkImageUuid } from '../kit/image-uuid.js';
import { rangeStream } from '../kit/range-stream.js';
import { CephImport, type Exit } from './import.js';
import { CephFileImport } from './file-import.js';
import { reopenImport, type ResumeHost } from './resume.js';
import { judgeStatus, monStates, poolState, type StatusAnswer } from './status.js';
import { RbdRunner } from './rbd-process.js';
import { hashByExport } from './image-hash.js';
import { removeRbdImage } from './remove.js';

/*
 * Ceph RBD backup storage.
 *
 * Images are RBD images named after the image uuid in the configured pool; installPath is
 * `ceph://<pool>/<imageUuid>`. An import writes `<imageUuid>.zimage-part-<random>` and renames it on commit.
 *
 * Two ways into the cluster, each where it is fastest:
 * - bulk bytes (AddImage, CalculateImageHash, full reads) go through the `rbd` command of ceph-common,
 *   run with argument lists (`rbd import - pool/img`, `rbd export pool/img -`): librbd's own concurrent,
 *   sparse-aware copy loops at full speed, in a separate process; a hash has rbd export into a Unix socket that a
 *   worker thread reads and hashes (export-hash.ts), like `rbd export - | openssl dgst`;
 * - everything small (connect/capacity, bounded header reads, allocated size, rename, remove, list) goes
 *   through one long-lived helper process per storage using Ceph's Python bindings (librados/librbd), which
 *   keeps the cluster connection open: a call costs one round trip instead of ≈30 ms of `rbd` start-up and
 *   cluster handshake.
 */

const PART_MARK = '.zimage-part-';
const INSTALL_RE = /^ceph:\/\/([^/@\s]+)\/([^/@\s]+)$/;

export class CephDriver implements BackupStorageDriver {
  readonly type = 'Ceph';
  readonly config: CephConfig;
  /** Image bytes read through open() sources (header reads for SyncImageSize), since this driver was made. */
  bytesRead = 0;
  private readonly helper: RadosHelper;
  private readonly rbd: RbdRunner;

  constructor(
    private readonly ctx: DriverContext,
    opts: CephDriverOptions = {},
  ) {
    this.config = parseCephConfig(ctx.config);
    this.rbd = new RbdRunner(opts.rbd ?? 'rbd', this.config, this.user);
    const conf = clientSettings(this.config);
    if (this.config.cephKey) conf.key = this.config.cephKey;
    this.helper = new RadosHelper({
      ...(this.config.cephConf ? { confFile: this.config.cephConf } : {}),
      user: this.user,
      pool: this.pool,
      conf,
      timeoutSeconds: this.timeoutSeconds,
      python: opts.python ?? defaultPython(),
    });
  }

  get pool(): string {
    return this.config.poolName;
  }

  private get user(): string {
    return this.config.cephUser ?? 'admin';
  }

  private get timeoutSeconds(): number {
    return this.config.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  }

  installPathOf(imageUuid: string): string {
    return `ceph://${this.pool}/${imageUuid}`;
  }

  private errCtx(what: string, image?: string): CephErrorContext {
    return {
      what,
      pool: this.pool,
      monitors: this.config.monUrls,
      user: this.user,
      timeoutSeconds: this.timeoutSeconds,
      ...(image !== undefined ? { image } : {}),
    };
  }

  /** Any failure as a StorageError; an unreachable cluster also drops the helper so the next call reconnects. */
  private fail(err: unknown, what: string, image?: string): StorageError {
    let e: StorageError;
    if (err instanceof StorageError) e = err;
    else if (err instanceof HelperError) e = cephError(err.errno, err.message, this.errCtx(what, image));
    else e = new StorageError('io', `${what}: ${(err as Error)?.message ?? String(err)}`);
    if (e.kind === 'unreachable') void this.helper.close();
    if (err instanceof StorageError && !e.message.startsWith(what)) e = new StorageError(e.kind, `${what}: ${e.message}`);
    return e;
  }

  private async call<T = any>(
    op: string,
    args: Record<string, unknown>,
    what: string,
    image?: string,
    payload?: Buffer,
  ): Promise<{ r: T; data: Buffer }> {
    try {
      return await this.helper.call<T>(op, args, undefined, payload);
    } catch (err) {
      throw this.fail(err, what, image);
    }
  }

  // ---- connect ---------------------------------------------------------------------------------------

  async connect(): Promise<Capacity> {
    await this.rbd.check();
    const what = `connecting to Ceph pool "${this.pool}" through monitors [${this.config.monUrls.join(', ')}]`;
    let st: StatusAnswer;
    try {
      st = (await this.helper.call<StatusAnswer>('status', { probe: true })).r;
    } catch (err) {
      const e = this.fail(err, what);
      if (e.kind === 'unreachable') await this.save({ mons: await monStates(this.config, undefined) }).catch(() => undefined);
      throw e;
    }
    let full: boolean;
    try {
      full = judgeStatus(st, {
        pool: this.pool,
        fsid: this.config.fsid,
        what,
        errCtx: this.errCtx(what),
        fail: (err) => this.fail(err, what),
      });
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'unreachable')
        await this.save({ mons: await monStates(this.config, undefined) }).catch(() => undefined);
      throw err;
    }
    const { usedCapacityLogical, ...pool } = poolState(st, this.pool, full);
    await this.save({ fsid: st.fsid, mons: await monStates(this.config, st), pool });
    return { totalCapacity: usedCapacityLogical + pool.availableCapacity, availableCapacity: pool.availableCapacity };
  }

  /** Persists learned settings when they changed (inventory fields come from them). */
  private async save(patch: Partial<CephConfig>): Promise<void> {
    const changed = Object.entries(patch).some(([k, v]) => JSON.stringify((this.config as any)[k]) !== JSON.stringify(v));
    if (!changed) return;
    Object.assign(this.config, patch);
    await this.ctx.saveConfig(patch);
  }

  // ---- paths ----------------------------------------------------------------------------------------

  private parse(installPath: string): string {
    const m = typeof installPath === 'string' ? INSTALL_RE.exec(installPath) : null;
    if (!m) throw new StorageError('invalid', `install path "${String(installPath)}" is not of the form ceph://<pool>/<image>.`);
    if (m[1] !== this.pool) {
      throw new StorageError(
        'invalid',
        `install path ${installPath} is in pool "${m[1]}", but this backup storage uses pool "${this.pool}"; refusing to touch it.`,
      );
    }
    return m[2]!;
  }

  private checkUuid(imageUuid: string): void {
    checkImageUuid(imageUuid, 'an RBD image name');
  }

  // ---- import ---------------------------------------------------------------------------------------

  async createImport(imageUuid: string, opts: { expectedSize?: number } = {}): Promise<ImportTarget> {
    const { installPath, temp } = await this.prepareImport(imageUuid, opts.expectedSize);
    const run = this.rbd.run(['import', '--no-progress', '--image-format', '2', '-', `${this.pool}/${temp}`], 'pipe');
    return new CephImport(this, installPath, imageUuid, temp, run);
  }

  /** rbd reads the file through its descriptor 3 (/dev/fd/3 reopens the same inode): `rbd import FILE`'s speed. */
  async importFromFile(imageUuid: string, fd: number, size: number): Promise<FileImportTarget> {
    const { installPath, temp } = await this.prepareImport(imageUuid, size);
    const run = this.rbd.run(['import', '--no-progress', '--image-format', '2', '/dev/fd/3', `${this.pool}/${temp}`], 'ignore', 'ignore', [
      fd,
    ]);
    return new CephFileImport(this, installPath, imageUuid, temp, run);
  }

  /** Opens the partial image a suspended import left, cut to `offset` bytes, to write on (on any node). */
  async resumeImport(imageUuid: string, tempName: string, offset: number): Promise<ResumableImport> {
    this.checkUuid(imageUuid);
    const host: ResumeHost = {
      call: (op, args, what, payload) => this.call(op, args, what, undefined, payload),
      imageSize: (name, what) => this.imageSize(name, what),
      renameImage: (from, to, installPath) => this.renameImage(from, to, installPath),
      removeImage: (name, what) => this.removeImage(name, what),
      readPartial: (name, end) => this.readStream(`ceph://${this.pool}/${name}`, { end }),
    };
    return reopenImport(host, this.installPathOf(imageUuid), imageUuid, imageUuid + PART_MARK, tempName, offset);
  }

  /** The checks before an import (pool there, room for `expectedSize`, name free) and its temporary name. */
  private async prepareImport(imageUuid: string, expectedSize: number | undefined): Promise<{ installPath: string; temp: string }> {
    this.checkUuid(imageUuid);
    const installPath = this.installPathOf(imageUuid);
    const what = `storing image ${installPath}`;
    const st = (await this.call<StatusAnswer>('status', {}, what)).r;
    if (!st.exists) throw new StorageError('not-found', `${what}: pool "${this.pool}" no longer exists.`);
    const pool = poolState(st, this.pool, false);
    if (pool.full || (expectedSize !== undefined && expectedSize > 0 && expectedSize > pool.availableCapacity)) {
      throw new StorageError(
        'no-space',
        pool.full || pool.availableCapacity === 0
          ? `${what}: Ceph pool "${this.pool}" is full; free space, raise its quota or add OSDs.`
          : `${what}: Ceph pool "${this.pool}" has ${pool.availableCapacity} bytes available but the image needs ${expectedSize}; free space or use another backup storage.`,
      );
    }
    const exists = (await this.call<{ exists: boolean }>('exists', { image: imageUuid }, what)).r.exists;
    if (exists) throw new StorageError('invalid', `${what}: RBD image "${imageUuid}" already exists in pool "${this.pool}".`);
    return { installPath, temp: `${imageUuid}${PART_MARK}${randomBytes(6).toString('hex')}` };
  }

  /** @internal the error of a failed `rbd import`; a timeout on a pool that became full is reported as full. */
  async importFailure(exit: Exit, stderr: string, installPath: string, image: string): Promise<StorageError> {
    const what = `storing image ${installPath}`;
    const e = rbdCommandError(exit.code, exit.signal, stderr, this.errCtx(what, image));
    if (e.kind === 'unreachable') {
      const st = await this.helper.call<StatusAnswer>('status', {}, 5000).catch(() => undefined);
      if (st && poolState(st.r, this.pool, false).full) return cephError(ERRNO.EDQUOT, 'writes were blocked', this.errCtx(what, image));
    }
    return e;
  }

  /** @internal */
  async renameImage(from: string, to: string, installPath: string): Promise<void> {
    await this.call('rename', { src: from, dst: to }, `committing image ${installPath}`, to);
  }

  /** @internal see remove.ts (`evict`: blocklist a killed rbd's watch first). */
  removeImage(name: string, what: string, evict = false): Promise<boolean> {
    return removeRbdImage(this.helper, name, evict, (err) => this.fail(err, what, name));
  }

  // ---- reads ----------------------------------------------------------------------------------------

  async open(installPath: string): Promise<OpenByteSource> {
    const name = this.parse(installPath);
    const what = `opening image ${installPath}`;
    const { r } = await this.call<{ handle: number; size: number }>('open', { image: name }, what, name);
    return new RbdByteSource(this, r.handle, r.size, installPath);
  }

  /** @internal one bounded read through an open handle. */
  async readAt(handle: number, offset: number, length: number, installPath: string): Promise<Buffer> {
    const { data } = await this.call('read', { handle, offset, length }, `reading image ${installPath}`);
    this.bytesRead += data.length;
    return data;
  }

  /** @internal */
  async closeHandle(handle: number): Promise<void> {
    await this.helper.call('close', { handle }).catch(() => undefined);
  }

  async readStream(installPath: string, opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const { start, end, signal } = opts;
    checkByteRange(start, end);
    signal?.throwIfAborted();
    const name = this.parse(installPath);
    await this.imageSize(name, `reading image ${installPath}`); // a missing image fails here, before rbd starts
    if (start === undefined && end === undefined) {
      const run = this.rbd.run(['export', '--no-progress', `${this.pool}/${name}`, '-'], 'ignore');
      const failCtx = this.errCtx(`reading image ${installPath}`, name);
      const gen = async function* (): AsyncGenerator<Buffer> {
        try {
          for await (const chunk of run.proc.stdout!) yield chunk as Buffer;
          const exit = await run.exit;
          if (exit.code !== 0) throw rbdCommandError(exit.code, exit.signal, run.stderr(), failCtx);
        } finally {
          if (run.proc.exitCode === null && run.proc.signalCode === null) run.proc.kill('SIGKILL');
        }
      };
      return Readable.from(gen(), { objectMode: false, ...(signal ? { signal } : {}) });
    }
    const src = await this.open(installPath);
    return rangeStream(src, {
      ...(start !== undefined ? { start } : {}),
      ...(end !== undefined ? { end } : {}),
      ...(signal ? { signal } : {}),
      chunkSize: READ_CHUNK,
    });
  }

  /** @internal */
  async imageSize(name: string, what: string): Promise<number> {
    const r = (await this.call<{ exists: boolean; size?: number }>('exists', { image: name }, what, name)).r;
    if (!r.exists) throw cephError(ERRNO.ENOENT, '', this.errCtx(what, name));
    return r.size ?? 0;
  }

  /**
   * RBD's own accounting, the same number as `rbd du`'s used_size: every RADOS data object of the image
   * that exists counts whole (the object size, 4 MiB by default; the last object is clipped at the image
   * end); objects never written — zero runs a sparse import skipped — count nothing. It comes from the
   * object map (fast-diff), so it costs no I/O on the data objects whatever the image size. Before
   * replication (multiply by poolReplicatedSize for raw bytes).
   */
  async allocatedSize(installPath: string): Promise<number> {
    const name = this.parse(installPath);
    return (await this.call<{ bytes: number }>('usage', { image: name }, `measuring image ${installPath}`, name)).r.bytes;
  }

  // ---- delete ---------------------------------------------------------------------------------------

  async delete(installPath: string): Promise<void> {
    const name = this.parse(installPath);
    await this.removeImage(name, `deleting image ${installPath}`);
  }

  async discard(imageUuid: string): Promise<void> {
    this.checkUuid(imageUuid);
    const what = `discarding image ${this.installPathOf(imageUuid)}`;
    const { r } = await this.call<{ images: string[] }>('list', {}, what);
    for (const name of r.images) {
      // A partial one may still be written by an rbd of the previous process (an import from a file outlives it).
      if (name === imageUuid) await this.removeImage(name, what);
      else if (name.startsWith(imageUuid + PART_MARK)) await this.removeImage(name, what, true);
    }
  }

  /**
   * Removes the partial images of an add; refuses at once (without blocking the helper in librbd, which would
   * wait for the watch to expire) while a client, such as a dead node's rbd import, still watches one.
   */
  async discardPartials(imageUuid: string): Promise<void> {
    this.checkUuid(imageUuid);
    const what = `discarding partial images of ${this.installPathOf(imageUuid)}`;
    const { r } = await this.call<{ images: string[] }>('list', {}, what);
    for (const name of r.images) {
      if (!name.startsWith(imageUuid + PART_MARK)) continue;
      if ((await this.call<{ watched: boolean }>('watched', { image: name }, what, name)).r.watched) {
        throw new StorageError(
          'io',
          `${what}: RBD image "${name}" is still open by a client (a dead one's watch expires after about 30 s)`,
        );
      }
      await this.removeImage(name, what);
    }
  }

  // ---- hash -----------------------------------------------------------------------------------------

  async hash(installPath: string, algorithms: readonly DigestAlgorithm[], opts: HashOptions = {}): Promise<DigestResult> {
    const name = this.parse(installPath);
    const what = `hashing image ${installPath}`;
    opts.signal?.throwIfAborted();
    const size = await this.imageSize(name, what);
    opts.signal?.throwIfAborted();
    try {
      return await hashByExport(
        { rbd: this.rbd, spec: `${this.pool}/${name}`, size, what, errCtx: this.errCtx(what, name), fail: (err) => this.fail(err, what) },
        algorithms,
        opts,
      );
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'unreachable') void this.helper.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.rbd.killAll();
    await this.helper.close();
  }

  /** @internal bytes read by the helper (cross-check of bytesRead). */
  async helperCounters(): Promise<{ bytesRead: number; handles: number }> {
    return (await this.call<{ bytesRead: number; handles: number }>('counters', {}, 'reading counters')).r;
  }
}
