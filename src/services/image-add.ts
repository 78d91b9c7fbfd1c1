import type { Db } from '../db/connect.js';
import type { DigestResult } from '../hashing/algorithms.js';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import type { BackupStorageTable, ImageBackupStorageRefTable, ImageTable } from '../db/schema.js';
import { isAbortError, StorageError, ZStackError } from '../lib/errors.js';
import { newUuid, resourceUuidProblem } from '../lib/ids.js';
import { ImportSourceError, maskUrl, openImportSource, type ImportPolicy } from '../sources/index.js';
import type { BackupStorageDriver, ImportTarget } from '../storage/driver.js';
import type { BackupStorageService } from './backup-storage.js';
import { deletedWhileAdding } from './adds-in-flight.js';
import { checkGivenTags } from './given-tags.js';
import { IMAGE_FORMATS, IMPORT_DIGESTS } from './image-constants.js';
import { directFileImportApplies, importFileDirect } from './file-import.js';
import { importSink, importTee, type ImportChecks, type ImportStep, type ImportStorage } from './image-import.js';
import type { ImageUploadService } from './image-upload.js';
import type { ImageStore } from './images.js';
import { expectedChecksums } from './tags.js';

/** ZStack registers one image type (DefaultImageFactory). */
const IMAGE_TYPES = ['zstack'];
const URL_PREFIXES = ['file:///', 'http://', 'https://', 'upload://', 'zstore://', 'ftp://', 'sftp://', '/'];

export interface AddImageParams {
  name: string;
  url: string;
  format?: string;
  mediaType?: string;
  platform?: string;
  architecture?: string;
  guestOsType?: string;
  system?: boolean;
  virtio?: boolean;
  backupStorageUuids?: string[];
  type?: string;
  description?: string;
  resourceUuid?: string;
}

export interface AddContext {
  signal: AbortSignal;
  progress(done: number, total: number): void;
  systemTags: string[];
  userTags: string[];
  /** The AddImage job and the server's base URL (ApiContext has both): an upload:// add needs them. */
  jobUuid?: string;
  baseUrl?: string;
  /** Checks, inside the commit transaction, that this node still holds the job (src/jobs/lease.ts). */
  fence?: (trx: Db) => Promise<void>;
}

/** The ZStack error for a failure of the import source. */
function sourceFailure(err: ImportSourceError): ZStackError {
  const argument = err.kind === 'forbidden' || err.kind === 'invalid-url' || err.kind === 'unsupported-scheme';
  const failure = new ZStackError(argument ? 'SYS.1007' : 'BS.1000', err.message);
  // The import policy said no: a security event naming the rule (the message names it, with the url masked).
  return err.kind === 'forbidden' || err.kind === 'unsupported-scheme'
    ? failure.withAudit('import.refused', { kind: err.kind, rule: err.message })
    : failure;
}

/** AddImage: validate, copy the bytes into every storage while hashing them, inspect, then go Ready. */
export class ImageAdder {
  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly step: ImportStep,
    /** AddImage with upload://: the bytes arrive later, PUT to an upload URL (see image-upload.ts). */
    private readonly uploads: ImageUploadService,
    private readonly policy: () => ImportPolicy,
    private readonly log: Logger,
    private readonly events: ServiceEvents = NO_EVENTS,
  ) {}

  /** ZStack's own checks and defaults (ImageApiInterceptor, ImageMessageFiller), in its order; the url comes later. */
  private normalise(p: AddImageParams): Required<Pick<AddImageParams, 'mediaType'>> & AddImageParams {
    const mediaType = p.mediaType ?? 'RootVolumeTemplate';
    let format = p.format;
    if (mediaType === 'ISO') {
      if (p.system) throw new ZStackError('SYS.1007', 'ISO cannot be used as system image');
      format = 'iso';
    }
    if (format !== undefined && !(IMAGE_FORMATS as readonly string[]).includes(format)) {
      throw new ZStackError('SYS.1007', `unknown format[${format}]; valid formats are [${IMAGE_FORMATS.join(', ')}]`);
    }
    if (p.type !== undefined && !IMAGE_TYPES.includes(p.type)) throw new ZStackError('SYS.1007', `unsupported image type[${p.type}]`);
    let platform = p.platform;
    if (platform === 'Paravirtualization') platform = 'Other';
    if (platform === 'WindowsVirtio') platform = 'Windows';
    if (platform === undefined && mediaType !== 'DataVolumeTemplate') platform = 'Linux';
    return { ...p, mediaType, format, platform };
  }

  async add(p: AddImageParams, ctx: AddContext): Promise<Record<string, unknown>> {
    const badUuid = resourceUuidProblem(p.resourceUuid);
    if (badUuid) throw new ZStackError('SYS.1007', badUuid);
    const params = this.normalise(p);
    checkGivenTags('org.zstack.header.image.APIAddImageMsg', 'ImageVO', ctx.systemTags, ctx.userTags, { addImage: true });
    const uuid = params.resourceUuid ?? newUuid();
    if (await this.images.get(uuid)) throw new ZStackError('SYS.1007', `resourceUuid[${uuid}] is already used by another image`);

    const storageUuids = [...new Set(params.backupStorageUuids ?? [])];
    if (storageUuids.length === 0) {
      throw new ZStackError('SYS.1007', `field[backupStorageUuids] must be a nonempty list`);
    }
    const targets = await this.pickStorages(storageUuids, params.name);
    if (!URL_PREFIXES.some((prefix) => params.url.startsWith(prefix))) {
      throw new ZStackError('SYS.1007', "url must starts with 'file:///', 'http://', 'https://'， 'ftp://', 'sftp://' or '/'");
    }

    const now = Date.now();
    const image: ImageTable = {
      uuid,
      name: params.name,
      description: params.description ?? null,
      state: 'Enabled',
      status: 'Downloading',
      size: 0,
      actual_size: 0,
      md5_sum: null,
      // Credentials never reach the database or a reply: the real url lives only in this call's memory.
      url: params.url.startsWith('/') ? `file://${params.url}` : /^file:/i.test(params.url) ? params.url : maskUrl(params.url),
      media_type: params.mediaType,
      guest_os_type: params.guestOsType ?? null,
      type: params.type ?? 'zstack',
      platform: params.platform ?? null,
      architecture: params.architecture ?? 'x86_64',
      format: params.format ?? 'raw',
      system: params.system ? 1 : 0,
      virtio: params.virtio === false ? 0 : 1,
      create_date: now,
      last_op_date: now,
    };
    const refs: ImageBackupStorageRefTable[] = targets.map((t) => ({
      image_uuid: uuid,
      backup_storage_uuid: t.uuid,
      install_path: '',
      status: 'Downloading',
      export_md5_sum: null,
      export_url: null,
      create_date: now,
      last_op_date: now,
    }));
    await this.images.create(image, refs, [
      ...ctx.systemTags.map((tag) => ({ tag, type: 'System' as const })),
      ...ctx.userTags.map((tag) => ({ tag, type: 'User' as const })),
    ]);

    const checks: ImportChecks = { expected: expectedChecksums(ctx.systemTags), declaredFormat: params.format };
    if (params.url.startsWith('upload://')) {
      // Answered now with the upload URL in `url`; the upload service finishes (or rolls back) the add.
      return this.uploads.begin({
        imageUuid: uuid,
        imageName: params.name,
        jobUuid: ctx.jobUuid ?? uuid,
        baseUrl: ctx.baseUrl ?? '',
        targets,
        checks,
      });
    }

    const imports: ImportTarget[] = [];
    // DeleteImage stops the add (see AddsInFlight); the job's own signal still means cancel or timeout.
    const deleted = new AbortController();
    const unregister = this.images.addsInFlight.register(uuid, (reason) => deleted.abort(reason));
    const signal = AbortSignal.any([ctx.signal, deleted.signal]);
    let importedBytes: number;
    try {
      let digests: DigestResult;
      if (directFileImportApplies(params.url, targets)) {
        // A local file into a storage that reads it itself (Ceph): see file-import.ts.
        const target = targets[0]!;
        ({ digests, bytes: importedBytes } = await importFileDirect({
          url: params.url,
          policy: this.policy(),
          target,
          imageUuid: uuid,
          algorithms: IMPORT_DIGESTS,
          signal,
          progress: (n, total) => ctx.progress(n, total),
          imports,
        }).catch((err) => {
          throw this.copyFailure(err, params.name, [target.name]);
        }));
      } else {
        const source = await openImportSource(params.url, this.policy(), { signal }).catch((err) => {
          throw err instanceof ImportSourceError ? sourceFailure(err) : err;
        });
        if (source.length === 0) {
          source.stream.destroy();
          throw new ZStackError(
            'SYS.1007',
            `the image is empty: ${source.displayUrl} has 0 bytes; check the url (for a file, that it is the image and not an empty placeholder)`,
          );
        }
        const total = source.length ?? 0;
        for (const t of targets) {
          if (source.length !== undefined && source.length > t.available) {
            source.stream.destroy();
            throw new ZStackError(
              'SYS.1006',
              `the image is ${source.length} bytes but backup storage[uuid:${t.uuid}, name:${t.name}] has only ${t.available} bytes available; free space or choose another backup storage`,
            );
          }
        }
        await this.step.open(imports, uuid, targets, source.length);
        ctx.progress(0, total);
        const tee = importTee({ signal, onProgress: (n) => ctx.progress(n, Math.max(total, n)) });
        await pipeline(source.stream, tee, importSink(imports), { signal }).catch((err) => {
          throw this.copyFailure(
            err,
            params.name,
            targets.map((t) => t.name),
          );
        });
        // A body without Content-Length (chunked) may end at once: known only now.
        if (tee.bytesHashed === 0) {
          throw new ZStackError('SYS.1006', `the image is empty: ${source.displayUrl} ended before its first byte; nothing was added`);
        }
        importedBytes = tee.bytesHashed;
        digests = await tee.digests();
      }
      await this.step.complete({
        imageUuid: uuid,
        targets,
        imports,
        digests,
        checks,
        deleted: () => deletedWhileAdding(uuid),
        fence: ctx.fence,
      });
    } catch (err) {
      await this.step.rollback(
        uuid,
        imports,
        targets.map((t) => t.driver),
      );
      throw deleted.signal.aborted ? deleted.signal.reason : this.addFailure(err, params.name);
    } finally {
      unregister();
    }
    await Promise.all(targets.map((t) => this.storages.refreshCapacity(t.uuid)));
    for (const t of targets) this.events.bytesImported(t.type, importedBytes);
    return { inventory: await this.images.inventory(uuid) };
  }

  /**
   * The storages the add goes to, as ZStack picks them: unknown uuids are SYS.1003; the interceptor keeps
   * the Connected ones with available capacity (status checked live here), none left is SYS.1006; a
   * Disabled one among them refuses the download, which fails the whole add (SYS.1002, as ImageManagerImpl).
   */
  private async pickStorages(uuids: string[], imageName: string): Promise<ImportStorage[]> {
    await this.storages.requireAll(uuids, 'backupStorageUuids');
    const usable: BackupStorageTable[] = [];
    for (const uuid of uuids) {
      const row = await this.storages.reconnect(uuid);
      if (row.status === 'Connected' && row.available_capacity > 0) usable.push(row);
    }
    if (usable.length === 0) {
      throw new ZStackError(
        'SYS.1006',
        `no backup storage specified in uuids[${uuids.join(', ')}] is available for adding this image; they are not in status Connected or not in state Enabled, or the uuid is invalid backup storage uuid`,
      );
    }
    const disabled = usable.find((r) => r.state !== 'Enabled');
    if (disabled) {
      throw new ZStackError(
        'SYS.1002',
        `Failed to download image[name:${imageName}] on all backup storage[${usable.map((r) => r.uuid).join(', ')}].`,
        new ZStackError(
          'SYS.1006',
          `backup storage cannot proceed message[org.zstack.header.storage.backup.DownloadImageMsg] because its state is ${disabled.state}`,
        ),
      );
    }
    return usable.map((r) => ({
      uuid: r.uuid,
      name: r.name,
      type: r.type,
      driver: this.storages.driver(r),
      available: r.available_capacity,
    }));
  }

  private copyFailure(err: unknown, name: string, storages: string[]): unknown {
    if (err instanceof ZStackError || isAbortError(err)) return err;
    if (err instanceof ImportSourceError) return sourceFailure(err);
    if (err instanceof StorageError) {
      if (err.kind === 'no-space') {
        return new ZStackError(
          'SYS.1006',
          `backup storage [${storages.join(', ')}] ran out of space while storing image[name:${name}]: ${err.message}`,
        );
      }
      return new ZStackError('SYS.1016', `cannot store image[name:${name}]: ${err.message}`);
    }
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ENOSPC') {
      return new ZStackError('SYS.1006', `backup storage [${storages.join(', ')}] ran out of space while storing image[name:${name}]`);
    }
    if (e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || e?.code === 'ECONNRESET') {
      return new ZStackError('BS.1000', `the download of image[name:${name}] broke off before the end: ${e.message}`);
    }
    return err;
  }

  private addFailure(err: unknown, name: string): unknown {
    if (err instanceof ZStackError || isAbortError(err)) return err;
    if (err instanceof StorageError) return new ZStackError('SYS.1006', `cannot add image[name:${name}]: ${err.message}`);
    return err;
  }

  /**
   * At start-up (and periodically in a cluster): images whose add has no live process to finish it any more.
   * `isDead` says which Downloading images are such (never one a live node is adding); their bytes and rows
   * are removed, as a failed add would have done.
   */
  async cleanupInterrupted(isDead: (imageUuid: string) => Promise<boolean> = () => Promise.resolve(true)): Promise<number> {
    const stale = await this.images.downloading();
    let removed = 0;
    for (const uuid of stale) {
      if (!(await isDead(uuid))) continue;
      await this.discardInterrupted(uuid);
      removed++;
    }
    return removed;
  }

  /** Removes an interrupted add of `uuid` (partial bytes, whose temporary names derive from the uuid, and rows). */
  async discardInterrupted(uuid: string): Promise<void> {
    const refs = await this.images.refs(uuid);
    const drivers: BackupStorageDriver[] = [];
    for (const ref of refs) {
      const row = await this.storages.get(ref.backup_storage_uuid);
      if (!row) continue;
      const driver = this.storages.driver(row);
      // Partial bytes a dead client still holds open are removed later, in the background, not waited for.
      const partialsGone = driver.discardPartials
        ? await driver.discardPartials(uuid).then(
            () => true,
            () => false,
          )
        : true;
      if (partialsGone) {
        await driver.discard(uuid).catch((err) => this.log.warn({ err, image: uuid }, 'cannot remove bytes of an interrupted add'));
      } else {
        this.log.warn(
          { image: uuid, backupStorage: row.uuid },
          'partial bytes of an interrupted add are still open; removing them in the background',
        );
        this.retryDiscardPartials(driver, uuid);
      }
      drivers.push(driver);
    }
    await this.step.rollback(uuid, [], drivers);
  }

  /** Retries removing a dead add's partial bytes for a few minutes (a dead Ceph client's watch expires in ~30 s). */
  private retryDiscardPartials(driver: BackupStorageDriver, uuid: string, attempt = 1): void {
    if (!driver.discardPartials || attempt > 60) return;
    setTimeout(() => {
      driver.discardPartials!(uuid)
        .then(() => this.log.info({ image: uuid }, 'removed the partial bytes of an interrupted add'))
        .catch((err: unknown) => {
          this.log.debug({ err, image: uuid, attempt }, 'partial bytes of an interrupted add not removed yet');
          this.retryDiscardPartials(driver, uuid, attempt + 1);
        });
    }, 3000).unref();
  }
}
