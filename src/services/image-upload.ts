import { writeChunk } from './fan-out.js';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import type { DigestResult } from '../hashing/algorithms.js';
import { Refusal, StorageError, ZStackError } from '../lib/errors.js';
import type { ImportTarget } from '../storage/driver.js';
import type { BackupStorageService } from './backup-storage.js';
import { importSink, importTee, type ImportStep } from './image-import.js';
import type { ImageStore } from './images.js';
import {
  DEFAULT_UPLOAD_IDLE_TIMEOUT_MS,
  KEEP_FINISHED_MS,
  UploadRegistry,
  type Upload,
  type UploadStart,
  type UploadStatus,
} from './upload-registry.js';

export type { UploadStart, UploadStatus } from './upload-registry.js';

/** Where upload URLs live, below the server's base URL (outside ZStack's /zstack/v1). */
export const UPLOAD_PATH = '/zimage/v1/uploads';

/** One PUT: where the client says its bytes start, the declared total, and whether this is the last part. */
export interface UploadPart {
  offset: number;
  total?: number;
  complete: boolean;
  /** The request's Content-Length: a body that ends short of it broke off and never completes the upload. */
  length?: number;
}

const isNoSpace = (err: unknown) =>
  (err instanceof StorageError && err.kind === 'no-space') || (err as NodeJS.ErrnoException)?.code === 'ENOSPC';

/**
 * AddImage with `upload://`: the image is recorded `Downloading` and answered at once with an upload URL;
 * the client PUTs the bytes there, in one request or resumed from an offset. Every byte goes through the
 * same one-pass pipeline as a URL add (MD5 + SHA-256 tee into the storages' import targets); the digest
 * state lives in memory between PUTs. The last byte commits, inspects, measures and turns the image Ready
 * with ImageAdder's own checks; any failure removes everything and is kept for GetUploadImageJobDetails.
 *
 * Upload state (upload-registry.ts) is in memory only: if the process stops, the image is still `Downloading` and
 * ImageAdder.cleanupInterrupted removes it (rows and partial bytes) at the next start; the client must add
 * it again. Uploads that receive no bytes for `idleTimeoutMs` (default 24 h) are removed the same way.
 */
export class ImageUploadService {
  private readonly uploads = new UploadRegistry();
  private timer: NodeJS.Timeout | undefined;
  /** An upload that received no bytes for this long is removed (default 24 h). */
  idleTimeoutMs = DEFAULT_UPLOAD_IDLE_TIMEOUT_MS;
  /** Finished (succeeded or failed) uploads are remembered this long for GetUploadImageJobDetails. */
  keepFinishedMs = KEEP_FINISHED_MS;

  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly step: ImportStep,
    private readonly log: Logger,
    private readonly events: ServiceEvents = NO_EVENTS,
  ) {}

  /** Registers the upload, puts its URL in the image's `url` and answers the AddImage job. */
  async begin(start: UploadStart): Promise<Record<string, unknown>> {
    const upload = this.uploads.open(start, UPLOAD_PATH);
    try {
      await this.images.update(start.imageUuid, { url: upload.url });
    } catch (err) {
      this.uploads.forget(upload);
      await this.rollback(start, []);
      throw err;
    }
    // DeleteImage while waiting for bytes removes the upload: its bytes go, its PUTs are refused as gone.
    upload.unregister = this.images.addsInFlight.register(start.imageUuid, (reason) => this.fail(upload, reason));
    this.ensureTimer();
    return { inventory: await this.images.inventory(start.imageUuid) };
  }

  /** HEAD/GET on the upload URL. Undefined for an unknown token. */
  status(token: string): UploadStatus | undefined {
    return this.uploads.status(token);
  }

  /** GetUploadImageJobDetails. */
  jobDetails(imageUuid: string): Record<string, unknown>[] {
    return this.uploads.jobDetails(imageUuid);
  }

  /**
   * One PUT of bytes. Appends `body` at `part.offset` (which must be the bytes received so far), and
   * finishes the add when the declared total is reached or the client says the upload is complete.
   * Refusals are plain text; the data plane gives each kind its status.
   */
  async receive(token: string, body: AsyncIterable<Buffer | string>, part: UploadPart): Promise<UploadStatus> {
    const u = this.uploads.admit(token, part.offset);
    const total = part.total ?? u.total;
    if (part.total !== undefined) {
      if (u.total !== undefined && u.total !== part.total) {
        throw new Refusal('invalid', `the declared image size ${part.total} differs from the size declared before (${u.total})`, u.offset);
      }
      if (part.total < u.offset) {
        throw new Refusal('invalid', `the declared image size ${part.total} is less than the ${u.offset} bytes already received`, u.offset);
      }
      if (part.total > u.limit) {
        throw new Refusal(
          'too-large',
          `the image is ${part.total} bytes but ${this.capacityText(u)}; free space or choose another backup storage`,
          u.offset,
        );
      }
    }
    u.busy = true;
    try {
      const image = await this.images.get(u.start.imageUuid);
      if (!image || image.status !== 'Downloading') {
        await this.fail(
          u,
          new ZStackError(
            'SYS.1006',
            `image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] was deleted while it was being uploaded`,
          ),
        );
        throw new Refusal('gone', `image[uuid:${u.start.imageUuid}] was deleted while it was being uploaded; the upload was removed`);
      }
      u.total = total;
      await this.startFlowing(u);
      this.uploads.running(u);

      const limit = total ?? u.limit;
      const from = u.offset;
      const it = body[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer | string>;
        try {
          next = await it.next();
        } catch {
          // The client went away mid-body: what arrived is kept, HEAD tells where to resume.
          this.log.info({ image: u.start.imageUuid, offset: u.offset }, 'upload request broke off; the client may resume');
          return this.status(token)!;
        }
        if (next.done) break;
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        if (chunk.length === 0) continue;
        if (u.offset + chunk.length > limit) {
          const why =
            total !== undefined
              ? `the request carries more bytes than the declared image size ${total}`
              : `the upload exceeds the available capacity: ${this.capacityText(u)}`;
          await this.fail(u, new ZStackError('SYS.1006', `upload of image[name:${u.start.imageName}] refused: ${why}`));
          throw new Refusal(total !== undefined ? 'invalid' : 'too-large', `${why}; the upload was removed, add the image again`);
        }
        try {
          await writeChunk(u.tee!, chunk);
        } catch (err) {
          throw await this.storageFailure(u, u.streamError ?? err);
        }
        this.uploads.received(u, chunk.length);
      }
      if (u.streamError) throw await this.storageFailure(u, u.streamError);
      if (part.length !== undefined && u.offset - from < part.length) return this.status(token)!; // broke off
      if ((total !== undefined && u.offset === total) || part.complete) await this.finish(u);
      return this.status(token)!;
    } finally {
      u.busy = false;
    }
  }

  /** Creates the storages' import targets and the hashing tee at the first PUT. */
  private async startFlowing(u: Upload): Promise<void> {
    if (u.tee) return;
    try {
      await this.step.open(u.imports, u.start.imageUuid, u.start.targets, u.total);
    } catch (err) {
      throw await this.storageFailure(u, err);
    }
    const tee = importTee();
    u.tee = tee;
    u.flowing = pipeline(tee, importSink(u.imports));
    u.flowing.catch((err: unknown) => {
      u.streamError ??= err;
    });
  }

  /** The last byte arrived: commit, inspect, measure, go Ready (ImageAdder's checks), or remove everything. */
  private async finish(u: Upload): Promise<void> {
    const { start } = u;
    const tee = u.tee!;
    let digests: DigestResult;
    try {
      tee.end();
      await u.flowing;
      digests = await tee.digests();
    } catch (err) {
      throw await this.storageFailure(u, u.streamError ?? err);
    }
    try {
      if (u.offset === 0)
        throw new ZStackError('SYS.1006', `the image is empty: the upload of image[name:${start.imageName}] was completed with no bytes`);
      await this.step.complete({
        imageUuid: start.imageUuid,
        targets: start.targets,
        imports: u.imports,
        digests,
        checks: start.checks,
        deleted: () =>
          new ZStackError('SYS.1006', `image[uuid:${start.imageUuid}, name:${start.imageName}] was deleted while it was being uploaded`),
      });
    } catch (err) {
      if (!(err instanceof ZStackError) && (err instanceof StorageError || typeof (err as NodeJS.ErrnoException)?.code === 'string')) {
        throw await this.storageFailure(u, err);
      }
      const paths = u.imports.map((i) => i.installPath);
      const zerr = await this.fail(u, err);
      // The token is the only credential here: storage paths stay out of the answer (the API has the full text).
      const details = paths.reduce((text, p) => text.split(p).join('(the uploaded image)'), zerr.details);
      throw new Refusal(
        'unprocessable',
        `the upload of image[uuid:${start.imageUuid}, name:${start.imageName}] was refused: ${details}; the image and its bytes were removed`,
      );
    }
    for (const t of start.targets) this.events.bytesImported(t.type, tee.bytesHashed);
    this.uploads.succeeded(u);
    u.tee = undefined;
    u.flowing = undefined;
    u.imports = [];
    await Promise.all(start.targets.map((t) => this.storages.refreshCapacity(t.uuid)));
  }

  /** A failure of the storage side: the upload is removed; no-space when out of space, else unavailable. */
  private async storageFailure(u: Upload, err: unknown): Promise<Refusal> {
    if (u.state === 'Failed' && u.error) return this.uploads.goneRefusal(u);
    const names = u.start.targets.map((t) => t.name).join(', ');
    const zerr = isNoSpace(err)
      ? new ZStackError(
          'SYS.1006',
          `backup storage [${names}] ran out of space while storing image[name:${u.start.imageName}]: ${(err as Error).message}`,
        )
      : err instanceof ZStackError
        ? err
        : new ZStackError('SYS.1016', `cannot store image[name:${u.start.imageName}]: ${(err as Error)?.message ?? String(err)}`);
    await this.fail(u, zerr);
    // Driver messages name paths and hosts: the data plane says what happened, GetUploadImageJobDetails the rest.
    const what = isNoSpace(err) ? `backup storage [${names}] ran out of space` : `backup storage [${names}] failed to store the bytes`;
    return new Refusal(
      isNoSpace(err) ? 'no-space' : 'unavailable',
      `${what}; the upload of image[uuid:${u.start.imageUuid}] was removed (GetUploadImageJobDetails tells why), add the image again`,
    );
  }

  /** Removes everything of a failed upload and remembers why. */
  private async fail(u: Upload, err: unknown): Promise<ZStackError> {
    const zerr =
      err instanceof ZStackError
        ? err
        : new ZStackError('SYS.1006', `upload of image[name:${u.start.imageName}] failed: ${(err as Error)?.message ?? String(err)}`);
    if (!this.uploads.failed(u, zerr)) return u.error!;
    u.tee?.destroy();
    u.flowing?.catch(() => undefined);
    try {
      await this.rollback(u.start, u.imports);
    } catch (e) {
      this.log.warn({ err: e, image: u.start.imageUuid }, 'cannot remove every trace of a failed upload');
    }
    u.tee = undefined;
    u.flowing = undefined;
    u.imports = [];
    this.log.info({ image: u.start.imageUuid, error: zerr.details }, 'upload failed; the image was removed');
    if (zerr.audit) this.log.warn({ ...zerr.audit, image: u.start.imageUuid }, 'security event');
    return zerr;
  }

  /** Removes every trace of the image (bytes, refs, digests, tags, row). */
  private rollback(start: UploadStart, imports: ImportTarget[]): Promise<void> {
    return this.step.rollback(
      start.imageUuid,
      imports,
      start.targets.map((t) => t.driver),
    );
  }

  private capacityText(u: Upload): string {
    const t = u.start.targets.find((x) => x.available === u.limit) ?? u.start.targets[0]!;
    return `backup storage[uuid:${t.uuid}, name:${t.name}] has only ${u.limit} bytes available`;
  }

  /**
   * Removes uploads that received no bytes for idleTimeoutMs (rows and partial bytes, as a failed add) and
   * forgets finished ones after keepFinishedMs. Runs periodically while uploads exist.
   */
  async sweepExpired(now = Date.now()): Promise<number> {
    const { forgotten, idle } = this.uploads.expired(now, this.idleTimeoutMs, this.keepFinishedMs);
    for (const u of forgotten) this.uploads.forget(u);
    let removed = 0;
    for (const u of idle) {
      // A PUT may have started, or DeleteImage ended it, while an earlier one was being removed.
      if (u.busy || u.state === 'Succeeded' || u.state === 'Failed') continue;
      const seconds = Math.round((now - u.lastActivity) / 1000);
      await this.fail(
        u,
        new ZStackError(
          'SYS.1006',
          `the upload of image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] expired: no bytes for ${seconds} s (limit ${Math.round(this.idleTimeoutMs / 1000)} s); the image was removed`,
        ),
      );
      removed++;
    }
    if (this.uploads.size === 0) this.stop();
    return removed;
  }

  private ensureTimer(): void {
    if (this.timer) return;
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.idleTimeoutMs / 4)));
    this.timer = setInterval(() => void this.sweepExpired().catch((err) => this.log.warn({ err }, 'upload sweep failed')), every);
    this.timer.unref();
  }

  /** Stops the periodic sweep (it starts again with the next upload). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
