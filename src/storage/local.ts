import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';
import { hashFile } from '../hashing/engine.js';
import { isAbortError, StorageError } from '../lib/errors.js';
import type { BackupStorageDriver, Capacity, CopyStat, HashOptions, ImportTarget, OpenByteSource } from './driver.js';
import { readableLength } from './byte-range.js';

/*
 * Layout under the root:
 *   <root>/images/<imageUuid>/<imageUuid>.template            a committed image
 *   <root>/images/<imageUuid>/.<imageUuid>.template.<rnd>.part  an import in progress
 * Temporary files live next to their final name, so commit is one rename() on one file system.
 */

const IMAGES_DIR = 'images';
const UUID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

type Errno = NodeJS.ErrnoException;

const codeOf = (err: unknown): string => (err as Errno)?.code ?? 'EIO';

/** A StorageError for a failed fs call: `what` says what zimage was doing, `p` the path concerned. */
function fsError(err: unknown, what: string, p: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = codeOf(err);
  switch (code) {
    case 'ENOENT':
      return new StorageError('not-found', `${what}: ${p} does not exist.`);
    case 'EACCES':
    case 'EPERM':
      return new StorageError('permission', `${what}: permission denied on ${p}; give the zimage user read/write access to it.`);
    case 'EROFS':
      return new StorageError('permission', `${what}: ${p} is on a read-only file system; mount it read-write.`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError('no-space', `${what}: no space left on the file system of ${p} (${code}); free space or add capacity.`);
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ELOOP':
      return new StorageError('invalid', `${what}: ${p} is not what was expected (${code}).`);
    default:
      return new StorageError('io', `${what}: I/O error on ${p} (${code}).`);
  }
}

const isInside = (child: string, parent: string): boolean => child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);

export class LocalDirectoryDriver implements BackupStorageDriver {
  readonly type = 'LocalBackupStorage';
  readonly root: string;
  private realRootPromise: Promise<string> | undefined;

  /** @param root absolute directory; throws StorageError('invalid') if it is not absolute. */
  constructor(root: string) {
    if (typeof root !== 'string' || !path.isAbsolute(root) || root.includes('\0')) {
      throw new StorageError(
        'invalid',
        `backup storage directory "${String(root)}" is not an absolute path; give a path starting with "/".`,
      );
    }
    this.root = path.resolve(root);
  }

  /** Where an image's file lives once committed. */
  installPathOf(imageUuid: string): string {
    return path.join(this.root, IMAGES_DIR, imageUuid, `${imageUuid}.template`);
  }

  async connect(): Promise<Capacity> {
    const root = this.root;
    let st;
    try {
      st = await fsp.stat(root);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new StorageError(
          'unreachable',
          `backup storage directory ${root} does not exist; create it (mkdir -p ${root}) or fix the backup storage url.`,
        );
      }
      if (code === 'EACCES' || code === 'EPERM') {
        throw new StorageError(
          'permission',
          `backup storage directory ${root} cannot be accessed by zimage (permission denied); fix the permissions of it and its parents.`,
        );
      }
      throw new StorageError('unreachable', `backup storage directory ${root} cannot be checked (${code}).`);
    }
    if (!st.isDirectory()) {
      throw new StorageError('unreachable', `backup storage path ${root} is not a directory; point the backup storage url at a directory.`);
    }
    const probe = path.join(root, `.zimage-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await fsp.open(probe, 'wx');
      await fh.close();
      await fsp.unlink(probe);
    } catch (err) {
      await fsp.rm(probe, { force: true }).catch(() => undefined);
      const code = codeOf(err);
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new StorageError('no-space', `backup storage directory ${root} is full (${code}); free space or add capacity.`);
      }
      throw new StorageError(
        'permission',
        `backup storage directory ${root} is not writable by zimage (${code}${code === 'EROFS' ? ': read-only file system' : ''}); ` +
          `give the zimage user write access to it${code === 'EROFS' ? ' and mount it read-write' : ''}.`,
      );
    }
    this.realRootPromise = fsp.realpath(root);
    const fs = await fsp.statfs(root);
    return { totalCapacity: fs.blocks * fs.bsize, availableCapacity: fs.bavail * fs.bsize };
  }

  async createImport(imageUuid: string, opts: { expectedSize?: number } = {}): Promise<ImportTarget> {
    if (typeof imageUuid !== 'string' || !UUID_RE.test(imageUuid)) {
      throw new StorageError(
        'invalid',
        `image uuid "${String(imageUuid)}" is not usable as a file name (letters, digits, '-' and '_' only).`,
      );
    }
    const installPath = this.installPathOf(imageUuid);
    const dir = path.dirname(installPath);
    if (opts.expectedSize !== undefined && opts.expectedSize > 0) {
      const fs = await fsp.statfs(this.root).catch((err) => {
        throw fsError(err, 'checking free space', this.root);
      });
      const available = fs.bavail * fs.bsize;
      if (opts.expectedSize > available) {
        throw new StorageError(
          'no-space',
          `backup storage directory ${this.root} has ${available} bytes free but the image needs ${opts.expectedSize}; free space or use another backup storage.`,
        );
      }
    }
    let createdDir: string | undefined;
    try {
      createdDir = await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      throw fsError(err, 'creating the image directory', dir);
    }
    const realDir = await fsp.realpath(dir).catch((err) => {
      throw fsError(err, 'creating the image directory', dir);
    });
    if (!isInside(realDir, await this.realRoot())) {
      throw new StorageError(
        'invalid',
        `image directory ${dir} leads outside the backup storage directory ${this.root} (symbolic link); remove it.`,
      );
    }
    const tempPath = path.join(dir, `.${imageUuid}.template.${randomBytes(6).toString('hex')}.part`);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    } catch (err) {
      if (createdDir) await fsp.rmdir(dir).catch(() => undefined);
      throw fsError(err, 'creating the image file', tempPath);
    }
    return new LocalImport(installPath, tempPath, dir, fh);
  }

  async open(installPath: string): Promise<OpenByteSource> {
    const p = await this.resolve(installPath);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw fsError(err, 'opening the image', installPath);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new StorageError('invalid', `image ${installPath} is not a regular file.`);
    }
    return new FileByteSource(fh, installPath);
  }

  async readStream(installPath: string, opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const { start, end, signal } = opts;
    for (const [name, v] of [
      ['start', start],
      ['end', end],
    ] as const) {
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
        throw new StorageError('invalid', `${name} must be a non-negative integer (got ${v}).`);
    }
    if (start !== undefined && end !== undefined && end < start) {
      throw new StorageError('invalid', `range end ${end} is before start ${start}.`);
    }
    signal?.throwIfAborted();
    const p = await this.resolve(installPath);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw fsError(err, 'opening the image', installPath);
    }
    return fh.createReadStream({
      ...(start !== undefined ? { start } : {}),
      ...(end !== undefined ? { end } : {}),
      ...(signal ? { signal } : {}),
      highWaterMark: 1 << 20,
    });
  }

  async stat(installPath: string): Promise<CopyStat> {
    const p = await this.resolve(installPath);
    try {
      const st = await fsp.lstat(p);
      if (!st.isFile()) throw new StorageError('invalid', `image ${installPath} is not a regular file.`);
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw fsError(err, 'opening the image', installPath);
    }
  }

  async allocatedSize(installPath: string): Promise<number> {
    const p = await this.resolve(installPath);
    try {
      return (await fsp.stat(p)).blocks * 512;
    } catch (err) {
      throw fsError(err, 'measuring the image', installPath);
    }
  }

  async delete(installPath: string): Promise<void> {
    const p = await this.resolve(installPath);
    try {
      const st = await fsp.lstat(p);
      if (st.isDirectory())
        throw new StorageError('invalid', `install path ${installPath} is a directory, not an image file; nothing was deleted.`);
      await fsp.unlink(p);
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return;
      throw fsError(err, 'deleting the image', installPath);
    }
    // Remove the image's own directory when it is left empty (never the root or <root>/images).
    const dir = path.dirname(p);
    const realRoot = await this.realRoot();
    if (path.dirname(dir) === path.join(realRoot, IMAGES_DIR)) await fsp.rmdir(dir).catch(() => undefined);
  }

  /**
   * Removes everything stored for an image: the committed file and any temporary `.part` left by an
   * interrupted import, with the image's directory. Nothing stored is not an error. A symbolic link
   * planted in place of the directory is removed itself, never followed.
   */
  async discard(imageUuid: string): Promise<void> {
    if (typeof imageUuid !== 'string' || !UUID_RE.test(imageUuid)) {
      throw new StorageError(
        'invalid',
        `image uuid "${String(imageUuid)}" is not usable as a file name (letters, digits, '-' and '_' only).`,
      );
    }
    const dir = path.dirname(this.installPathOf(imageUuid));
    let st;
    try {
      st = await fsp.lstat(dir);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'discarding the image', dir);
    }
    // <root>/images itself must be inside the root (it could be a planted link too).
    const imagesReal = await this.resolve(path.dirname(dir));
    if (path.dirname(imagesReal) !== (await this.realRoot())) {
      throw new StorageError('invalid', `${path.dirname(dir)} leads outside the backup storage directory ${this.root}; fix it by hand.`);
    }
    try {
      if (st.isDirectory()) await fsp.rm(path.join(imagesReal, imageUuid), { recursive: true, force: true });
      else await fsp.unlink(path.join(imagesReal, imageUuid));
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw fsError(err, 'discarding the image', dir);
    }
  }

  async hash(installPath: string, algorithms: readonly DigestAlgorithm[], opts: HashOptions = {}): Promise<DigestResult> {
    const p = await this.resolve(installPath);
    let size: number;
    try {
      const st = await fsp.stat(p);
      if (!st.isFile()) throw new StorageError('invalid', `image ${installPath} is not a regular file.`);
      size = st.size;
    } catch (err) {
      throw fsError(err, 'hashing the image', installPath);
    }
    const { onProgress, signal } = opts;
    try {
      return await hashFile(p, {
        algorithms,
        ...(signal ? { signal } : {}),
        ...(onProgress ? { onProgress: (done: number) => onProgress(done, size) } : {}),
      });
    } catch (err) {
      if (isAbortError(err) || err instanceof StorageError) throw err;
      if ((err as Errno)?.code) throw fsError(err, 'hashing the image', installPath);
      throw err;
    }
  }

  async close(): Promise<void> {
    // Nothing is held between calls.
  }

  private realRoot(): Promise<string> {
    this.realRootPromise ??= fsp.realpath(this.root);
    return this.realRootPromise.catch((err) => {
      this.realRootPromise = undefined;
      throw fsError(err, 'resolving the backup storage directory', this.root);
    });
  }

  /**
   * The real path of `installPath`, which must lie strictly inside the root both as written (normalised)
   * and with symbolic links resolved (for the part of it that exists).
   */
  private async resolve(installPath: string): Promise<string> {
    if (typeof installPath !== 'string' || installPath === '' || installPath.includes('\0')) {
      throw new StorageError('invalid', `install path "${String(installPath)}" is not a valid path.`);
    }
    const refuse = (): StorageError =>
      new StorageError(
        'invalid',
        `install path ${installPath} is outside the backup storage directory ${this.root}; refusing to touch it.`,
      );
    const normalised = path.resolve(this.root, installPath);
    if (!isInside(normalised, this.root)) throw refuse();
    const realRoot = await this.realRoot();
    // Resolve the longest existing prefix; what does not exist yet cannot be a symbolic link.
    let existing = normalised;
    const rest: string[] = [];
    for (;;) {
      try {
        const real = path.join(await fsp.realpath(existing), ...rest);
        if (!isInside(real, realRoot)) throw refuse();
        return real;
      } catch (err) {
        if (err instanceof StorageError) throw err;
        const code = codeOf(err);
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fsError(err, 'resolving the install path', installPath);
        const parent = path.dirname(existing);
        if (parent === existing) throw refuse();
        rest.unshift(path.basename(existing));
        existing = parent;
      }
    }
  }
}

/** A write in progress: bytes go to the temporary file; commit() syncs and renames, abort() removes. */
class LocalImport implements ImportTarget {
  readonly stream: Writable;
  private state: 'open' | 'committed' | 'aborted' = 'open';
  private closed = false;
  private writeError: StorageError | undefined;

  constructor(
    readonly installPath: string,
    private readonly tempPath: string,
    private readonly dir: string,
    private readonly fh: fsp.FileHandle,
  ) {
    let position = 0;
    const writeAll = async (buf: Buffer): Promise<void> => {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, position);
        off += bytesWritten;
        position += bytesWritten;
      }
    };
    const onWriteError = async (err: unknown): Promise<StorageError> => {
      const e = this.writeError ?? fsError(err, 'writing the image', installPath);
      this.writeError = e;
      // A failed write leaves nothing usable: remove the temporary file before the error is seen.
      await this.cleanup(e);
      return e;
    };
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        writeAll(chunk).then(
          () => cb(),
          (err: unknown) => void onWriteError(err).then((e) => cb(e)),
        );
      },
      writev: (chunks, cb) => {
        writeAll(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(
          () => cb(),
          (err: unknown) => void onWriteError(err).then((e) => cb(e)),
        );
      },
    });
  }

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.writeError) throw this.writeError;
    if (this.state === 'aborted') throw new StorageError('invalid', `import of ${this.installPath} was aborted; it cannot be committed.`);
    const s = this.stream;
    try {
      if (!s.writableFinished) {
        if (!s.writableEnded) s.end();
        await finished(s);
      }
    } catch (err) {
      await this.cleanup();
      throw this.writeError ?? fsError(err, 'writing the image', this.installPath);
    }
    try {
      await this.fh.sync();
      await this.closeFile();
      await fsp.rename(this.tempPath, this.installPath);
    } catch (err) {
      await this.cleanup();
      throw fsError(err, 'committing the image', this.installPath);
    }
    this.state = 'committed';
    // Make the rename durable; a failure here does not undo the commit.
    try {
      const d = await fsp.open(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
      await d.sync().finally(() => d.close());
    } catch {
      // Some file systems refuse fsync on directories.
    }
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    await this.cleanup();
  }

  private async closeFile(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }

  /** Closes and removes the temporary file (and the image directory if empty), then ends the stream. */
  private async cleanup(err?: Error): Promise<void> {
    this.state = 'aborted';
    await this.closeFile();
    await fsp.rm(this.tempPath, { force: true }).catch(() => undefined);
    await fsp.rmdir(this.dir).catch(() => undefined); // only if empty
    if (!this.stream.destroyed) this.stream.destroy(err);
  }
}

/** Positional reads over an open file; reads never go past the end of the file. */
class FileByteSource implements OpenByteSource {
  private closed = false;

  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly name: string,
  ) {}

  async size(): Promise<number> {
    this.assertOpen();
    return (await this.fh.stat()).size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen();
    const n = readableLength(this.name, offset, length, await this.size());
    const buf = Buffer.alloc(n);
    let got = 0;
    try {
      while (got < n) {
        const { bytesRead } = await this.fh.read(buf, got, n - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
    } catch (err) {
      throw fsError(err, 'reading the image', this.name);
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, got);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('invalid', `image ${this.name} was already closed.`);
  }
}
