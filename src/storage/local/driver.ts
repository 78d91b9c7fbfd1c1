import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { DigestAlgorithm, DigestResult } from '../../hashing/algorithms.js';
import { hashFile } from '../../hashing/engine.js';
import { isAbortError, StorageError } from '../../lib/errors.js';
import type { BackupStorageDriver, Capacity, CopyStat, HashOptions, OpenByteSource, ResumableImport } from '../driver.js';
import { checkByteRange } from '../kit/byte-range.js';
import { checkImageUuid, isTempNameOf } from '../kit/image-uuid.js';
import { isStrictlyInside } from '../kit/inside.js';
import { FileByteSource } from './byte-source.js';
import { codeOf, fsError } from './fs-error.js';
import { LocalImport } from './import.js';

/*
 * Layout under the root:
 *   <root>/images/<imageUuid>/<imageUuid>.template            a committed image
 *   <root>/images/<imageUuid>/.<imageUuid>.template.<rnd>.part  an import in progress
 * Temporary files live next to their final name, so commit is one rename() on one file system.
 */

const IMAGES_DIR = 'images';

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

  async createImport(imageUuid: string, opts: { expectedSize?: number } = {}): Promise<ResumableImport> {
    checkImageUuid(imageUuid, 'a file name');
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
    if (!isStrictlyInside(realDir, await this.realRoot())) {
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

  async resumeImport(imageUuid: string, tempName: string, offset: number): Promise<ResumableImport> {
    checkImageUuid(imageUuid, 'a file name');
    if (!isTempNameOf(imageUuid, tempName) || !Number.isSafeInteger(offset) || offset < 0) {
      throw new StorageError('invalid', `[${String(tempName)}] is not the partial bytes of an import of image ${imageUuid}.`);
    }
    // Another node without this directory (a local storage is bound to the node that has it) fails here.
    const isDir = await fsp.stat(this.root).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!isDir) throw new StorageError('unreachable', `backup storage directory ${this.root} does not exist on this node.`);
    const installPath = this.installPathOf(imageUuid);
    const dir = path.dirname(installPath);
    const tempPath = await this.resolve(path.join(dir, tempName));
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(tempPath, constants.O_WRONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw fsError(err, 'reopening the partial image', tempPath);
    }
    try {
      const { size } = await fh.stat();
      if (size < offset)
        throw new StorageError('invalid', `the partial image ${tempPath} has ${size} bytes, fewer than the ${offset} recorded.`);
      await fh.truncate(offset);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw fsError(err, 'reopening the partial image', tempPath);
    }
    return new LocalImport(installPath, tempPath, dir, fh, offset, (p, end) => this.readStream(p, { end }));
  }

  async open(installPath: string): Promise<OpenByteSource> {
    const fh = await this.openForReading(installPath);
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new StorageError('invalid', `image ${installPath} is not a regular file.`);
    }
    return new FileByteSource(fh, installPath);
  }

  async readStream(installPath: string, opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const { start, end, signal } = opts;
    checkByteRange(start, end);
    signal?.throwIfAborted();
    const fh = await this.openForReading(installPath);
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
    checkImageUuid(imageUuid, 'a file name');
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
      if ((err as NodeJS.ErrnoException)?.code) throw fsError(err, 'hashing the image', installPath);
      throw err;
    }
  }

  async close(): Promise<void> {
    // Nothing is held between calls.
  }

  /** The stored file opened read-only, never through a symbolic link. */
  private async openForReading(installPath: string): Promise<fsp.FileHandle> {
    const p = await this.resolve(installPath);
    try {
      return await fsp.open(p, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw fsError(err, 'opening the image', installPath);
    }
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
    if (!isStrictlyInside(normalised, this.root)) throw refuse();
    const realRoot = await this.realRoot();
    // Resolve the longest existing prefix; what does not exist yet cannot be a symbolic link.
    let existing = normalised;
    const rest: string[] = [];
    for (;;) {
      try {
        const real = path.join(await fsp.realpath(existing), ...rest);
        if (!isStrictlyInside(real, realRoot)) throw refuse();
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
