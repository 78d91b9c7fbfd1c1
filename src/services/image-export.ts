import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { StorageError, ZStackError } from '../lib/errors.js';
import type { BackupStorageDriver, CopyStat } from '../storage/driver.js';
import type { BackupStorageService } from './backup-storage.js';
import type { ImageStore } from './images.js';
import { CopyProblem, hashCopy, inspectCopy } from './measure.js';

/** Where export URLs live, below the server's base URL (outside ZStack's /zstack/v1). */
export const EXPORT_PATH = '/zimage/v1/exports';
/** 192 random bits, hex: the only credential of an export link. */
const TOKEN_RE = /^[0-9a-f]{48}$/;

export interface ExportContext {
  signal: AbortSignal;
  progress(done: number, total: number): void;
  baseUrl: string;
}

/** An export link resolved for the data plane: what to stream and how to label it. */
export interface ServedExport {
  imageUuid: string;
  fileName: string;
  /** The stored bytes' length. */
  size: number;
  md5: string;
  /** The type of the storage holding the bytes, for metrics. */
  storageType: string;
  read(range?: { start: number; end: number }, signal?: AbortSignal): Promise<Readable>;
}

/**
 * Why a link cannot be served: `gone` (no such export any more), `missing` (the stored bytes are gone),
 * `unsafe` (the stored bytes changed into an unsafe image), `unavailable` (the storage cannot be read now).
 */
export class ExportUnavailable extends Error {
  constructor(
    readonly reason: 'gone' | 'missing' | 'unsafe' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'ExportUnavailable';
  }
}

/** Size and mtime of a copy when it was last judged sound, per export token. */
interface Verified {
  size: number;
  mtimeMs: number;
}

/** An mtime this close to the inspection may still change within the storage's timestamp granularity. */
const MTIME_SETTLE_MS = 2000;

const tokenOf = (url: string | null): string | undefined => {
  const m = url ? /\/zimage\/v1\/exports\/([0-9a-f]{48})\//.exec(url) : null;
  return m?.[1];
};

/** A file name that needs no quoting in a URL or a Content-Disposition header. */
const fileNameOf = (name: string, format: string) => {
  const base =
    name
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 80) || 'image';
  return `${base}.${format}`;
};

/**
 * ExportImageFromBackupStorage / DeleteExportedImageFromBackupStorage. zimage serves an export itself:
 * an unguessable URL under /zimage/v1/exports that streams the stored bytes through the driver (with Range).
 * No copy is made; the link is recorded on the ref (export_url, export_md5_sum) and works until the export
 * is deleted or the copy stops being Ready.
 */
export class ImageExportService {
  /** token → (image, storage); rebuilt from the refs on a miss (after a restart). */
  private readonly tokens = new Map<string, { imageUuid: string; backupStorageUuid: string }>();
  /** token → what the copy looked like when last inspected sound (this node only; a miss re-inspects). */
  private readonly verified = new Map<string, Verified>();

  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly log: Logger,
  ) {}

  async export(
    backupStorageUuid: string,
    imageUuid: string,
    exportFormat: string | undefined,
    ctx: ExportContext,
  ): Promise<Record<string, unknown>> {
    const storage = await this.storages.require(backupStorageUuid, 'backupStorageUuid');
    const image = await this.images.require(imageUuid, 'imageUuid');
    const ref = (await this.images.refs(imageUuid)).find((r) => r.backup_storage_uuid === backupStorageUuid);
    if (!ref) {
      // CephBackupStorageBase.exportImage's operr.
      throw new ZStackError(
        'SYS.1006',
        `image[uuid: ${imageUuid}] is not on backup storage[uuid:${backupStorageUuid}, name:${storage.name}]`,
      );
    }
    if (image.status !== 'Ready' || ref.status !== 'Ready') {
      const status = ref.status !== 'Ready' ? ref.status : image.status;
      throw new ZStackError(
        'SYS.1006',
        `the copy of image[uuid:${imageUuid}, name:${image.name}] on backup storage[uuid:${backupStorageUuid}] is ${status}, not Ready; only a Ready copy can be exported`,
      );
    }
    if (exportFormat !== undefined && exportFormat.toLowerCase() !== image.format.toLowerCase()) {
      throw new ZStackError(
        'SYS.1014',
        `cannot export image[uuid:${imageUuid}, name:${image.name}] as ${exportFormat}: zimage does not convert images; it is ${image.format}, export it as ${image.format} (or omit exportFormat)`,
      );
    }
    const { row, driver } = await this.storages.usable(backupStorageUuid, false);
    // Exporting again keeps the link (a client may still be downloading); the host follows this request.
    const token = tokenOf(ref.export_url) ?? randomBytes(24).toString('hex');
    // The stored bytes may have changed behind zimage's back since they were added: judge them again.
    await this.judge(token, driver, ref.install_path, row, imageUuid, image.format).catch((err) => {
      if (err instanceof CopyProblem && err.kind === 'unsafe') {
        const refused = new ZStackError(
          'SYS.1006',
          `${err.details}; the copy is now Error and cannot be exported (restore the bytes and run SyncImageSize, or delete the image)`,
        );
        refused.audit = err.audit;
        throw refused;
      }
      if (err instanceof StorageError) {
        throw new ZStackError(
          'SYS.1006',
          `cannot read the copy of image[uuid:${imageUuid}, name:${image.name}] on backup storage[uuid:${backupStorageUuid}, name:${row.name}]: ${err.message}`,
        );
      }
      throw err;
    });

    let md5 = await this.images.digests.get(imageUuid, backupStorageUuid, 'MD5');
    if (!md5) {
      md5 = await hashCopy(driver, ref.install_path, row, 'MD5', ctx);
      await this.images.digests.record(imageUuid, backupStorageUuid, { MD5: md5 }, 'calculate');
    }

    const imageUrl = `${ctx.baseUrl.replace(/\/+$/, '')}${EXPORT_PATH}/${token}/${fileNameOf(image.name, image.format)}`;
    await this.images.setExport(imageUuid, backupStorageUuid, imageUrl, md5);
    this.tokens.set(token, { imageUuid, backupStorageUuid });
    return { imageUrl, exportMd5Sum: md5 };
  }

  /** DeleteExportedImageFromBackupStorage: an image without a copy there has nothing to withdraw (success, as ZStack). */
  async deleteExport(backupStorageUuid: string, imageUuid: string): Promise<Record<string, unknown>> {
    await this.storages.require(backupStorageUuid, 'backupStorageUuid');
    await this.images.require(imageUuid, 'imageUuid');
    const ref = (await this.images.refs(imageUuid)).find((r) => r.backup_storage_uuid === backupStorageUuid);
    if (!ref) return {};
    const token = tokenOf(ref.export_url);
    if (token) {
      this.tokens.delete(token);
      this.verified.delete(token);
    }
    if (ref.export_url !== null || ref.export_md5_sum !== null) {
      await this.images.setExport(imageUuid, backupStorageUuid, null, null);
    }
    return {};
  }

  /**
   * The export behind a token, checked against the database on every request: a deleted export, a copy no
   * longer Ready or a removed image are `gone`; a storage that is not Connected is `unavailable`. Then the
   * stored bytes: their size and mtime are compared with those seen when they were last judged sound, and
   * on any difference (or where the driver has no mtime) the header is inspected again; a copy found
   * unsafe becomes Error and is `unsafe`, a vanished one `missing`.
   */
  async resolve(token: string): Promise<ServedExport> {
    const gone = new ExportUnavailable(
      'gone',
      'no export at this URL: it was deleted, the image is no longer available, or the URL is mistyped',
    );
    if (!TOKEN_RE.test(token)) throw gone;
    let key = this.tokens.get(token);
    if (!key) {
      // After a restart: the token is hex only, so it is matched literally (no LIKE wildcards in it).
      const row = await this.images.refExportedAt(`${EXPORT_PATH}/${token}/`);
      if (!row) throw gone;
      key = { imageUuid: row.image_uuid, backupStorageUuid: row.backup_storage_uuid };
      this.tokens.set(token, key);
    }
    const ref = await this.images.ref(key.imageUuid, key.backupStorageUuid);
    const image = await this.images.get(key.imageUuid);
    if (!ref || tokenOf(ref.export_url) !== token || !ref.export_md5_sum || !image) {
      this.tokens.delete(token);
      this.verified.delete(token);
      throw gone;
    }
    if (ref.status === 'Error') {
      throw new ExportUnavailable(
        'unsafe',
        `the exported image's stored bytes were found unsafe or missing (its copy is Error); it is not served until an administrator restores them`,
      );
    }
    if (ref.status !== 'Ready' || image.status !== 'Ready') throw gone;
    const storage = await this.storages.get(key.backupStorageUuid);
    if (!storage) throw gone;
    if (storage.status !== 'Connected') {
      throw new ExportUnavailable(
        'unavailable',
        `backup storage[name:${storage.name}] holding this image is ${storage.status}; try again later`,
      );
    }
    const driver: BackupStorageDriver = this.storages.driver(storage);
    const installPath = ref.install_path;
    let size: number;
    try {
      size = await this.judge(token, driver, installPath, storage, key.imageUuid, image.format);
    } catch (err) {
      // The data plane's caller holds a link, not the storage: no install path in the answer.
      const shown = (e: Error) => e.message.split(installPath).join('(the exported image)');
      if (err instanceof CopyProblem && err.kind === 'unsafe') {
        throw new ExportUnavailable('unsafe', `${shown(err)}; the copy is now Error and is not served`);
      }
      if (err instanceof CopyProblem && err.kind === 'missing') {
        throw new ExportUnavailable(
          'missing',
          `the exported image's bytes are missing from backup storage[name:${storage.name}]; they were removed outside zimage`,
        );
      }
      this.log.warn({ err, image: key.imageUuid, backupStorage: key.backupStorageUuid }, 'cannot open an exported image');
      throw new ExportUnavailable(
        'unavailable',
        `the exported image cannot be read from its backup storage[name:${storage.name}] right now; try again later`,
      );
    }
    return {
      imageUuid: key.imageUuid,
      fileName: fileNameOf(image.name, image.format),
      size,
      md5: ref.export_md5_sum,
      storageType: storage.type,
      read: (range, signal) => driver.readStream(installPath, { ...(range ?? {}), ...(signal ? { signal } : {}) }),
    };
  }

  /**
   * Judges the stored bytes behind an export and returns their size: cheap when size and mtime are those
   * last judged sound; else the header is inspected again (CopyProblem if unsafe, missing or unreadable;
   * an unsafe copy is marked Error).
   */
  private async judge(
    token: string,
    driver: BackupStorageDriver,
    installPath: string,
    bs: { uuid: string; name: string },
    imageUuid: string,
    format: string,
  ): Promise<number> {
    let st: CopyStat | undefined;
    if (driver.stat) {
      try {
        st = await driver.stat(installPath);
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        if (err.kind === 'not-found') throw new CopyProblem('missing', `image copy ${installPath} is missing: ${err.message}`);
        // Anything else (not a regular file, unreachable): the inspection below judges it.
      }
      const seen = this.verified.get(token);
      if (st && seen && st.mtimeMs !== undefined && seen.size === st.size && seen.mtimeMs === st.mtimeMs) return st.size;
    }
    this.verified.delete(token);
    const inspectedAt = Date.now();
    let inspected;
    try {
      inspected = await inspectCopy(driver, installPath, bs, format);
    } catch (err) {
      if (err instanceof CopyProblem && err.kind === 'unsafe') {
        this.log.warn(
          { ...err.audit, image: imageUuid, backupStorage: bs.uuid, reason: err.details },
          'stored image copy changed into an unsafe image; marked Error',
        );
        await this.images.setCopyStatus(imageUuid, bs.uuid, 'Error');
      }
      throw err;
    }
    if (st?.mtimeMs !== undefined && st.size === inspected.fileSize && st.mtimeMs < inspectedAt - MTIME_SETTLE_MS) {
      this.verified.set(token, { size: st.size, mtimeMs: st.mtimeMs });
    }
    return inspected.fileSize;
  }
}
