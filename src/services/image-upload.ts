import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import type { DigestResult } from '../hashing/algorithms.js';
import { Refusal, StorageError, ZStackError } from '../lib/errors.js';
import type { BackupStorageService } from './backup-storage.js';
import { writeChunk } from './fan-out.js';
import { importSink, type ImportStep } from './image-import.js';
import type { ImageStore } from './images.js';
import { endSink, openUploadImports, suspendImports } from './upload-resume.js';
import { sweepUploads, type UploadLimits } from './upload-sweep.js';
import {
  DEFAULT_UPLOAD_IDLE_TIMEOUT_MS,
  KEEP_FINISHED_MS,
  UploadRegistry,
  type Upload,
  type UploadStart,
  type UploadStatus,
} from './upload-registry.js';
import type { UploadRow } from './upload-state.js';

export type { UploadStart, UploadStatus } from './upload-registry.js';

/** Where upload URLs live, below the server's base URL (outside ZStack's /zstack/v1). */
export const UPLOAD_PATH = '/zimage/v1/uploads';
/** How long a PUT holds an upload without renewing (a node that dies mid-PUT blocks its upload this long). */
const LEASE_MS = 20_000;

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
 * the client PUTs the bytes there, in one request or resumed from an offset. Every byte is hashed (MD5 +
 * SHA-256) as it is written into the storages' import targets. The last byte goes through the import step
 * AddImage from a URL uses (checks, commit, measure, Ready); any failure removes everything and is kept for
 * GetUploadImageJobDetails.
 *
 * The upload state lives in the database (upload-registry.ts), so any node may take the next PUT: one PUT at
 * a time holds the row's lease; on storages that can resume an import (SFTP, local directory) each PUT ends by
 * syncing its bytes, and a node continuing an upload whose running digests it does not hold rebuilds them
 * once by re-reading the stored bytes. A local directory is bound to its node (upload-resume.ts). Uploads
 * that receive no bytes for `idleTimeoutMs` (default 24 h) are removed by the sweep of any node.
 */
export class ImageUploadService implements UploadLimits {
  private readonly uploads: UploadRegistry;
  private timer: NodeJS.Timeout | undefined;
  /** An upload that received no bytes for this long is removed (default 24 h). */
  idleTimeoutMs = DEFAULT_UPLOAD_IDLE_TIMEOUT_MS;
  /** Finished (succeeded or failed) uploads are remembered this long for GetUploadImageJobDetails. */
  keepFinishedMs = KEEP_FINISHED_MS;
  leaseMs = LEASE_MS;

  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly step: ImportStep,
    private readonly log: Logger,
    private readonly events: ServiceEvents = NO_EVENTS,
    /** This node (ZIMAGE_NODE_ID): recorded as the owner of the uploads it begins. */
    nodeId = 'node-1',
  ) {
    this.uploads = new UploadRegistry(images.db, storages, nodeId, (u) =>
      this.images.addsInFlight.register(u.start.imageUuid, (reason) => this.fail(u, reason)),
    );
  }

  /** Registers the upload, puts its URL in the image's `url` and answers the AddImage job. */
  async begin(start: UploadStart): Promise<Record<string, unknown>> {
    const upload = this.uploads.open(start, UPLOAD_PATH);
    try {
      await this.images.update(start.imageUuid, { url: upload.url });
      await this.uploads.record(upload);
    } catch (err) {
      await this.step.rollback(
        start.imageUuid,
        [],
        start.targets.map((t) => t.driver),
      );
      throw err;
    }
    this.ensureTimer();
    return { inventory: await this.images.inventory(start.imageUuid) };
  }

  /** HEAD/GET on the upload URL. Undefined for an unknown token. */
  status(token: string): Promise<UploadStatus | undefined> {
    return this.uploads.status(token);
  }

  /** GetUploadImageJobDetails. */
  jobDetails(imageUuid: string): Promise<Record<string, unknown>[]> {
    return this.uploads.jobDetails(imageUuid);
  }

  /**
   * One PUT of bytes, on whichever node. Appends `body` at `part.offset` (which must be the bytes received so
   * far), and finishes the add when the declared total is reached or the client says the upload is complete.
   * Refusals are plain text; the data plane gives each kind its status.
   */
  async receive(token: string, body: AsyncIterable<Buffer | string>, part: UploadPart): Promise<UploadStatus> {
    const lease = randomBytes(12).toString('hex');
    await this.uploads.claim(token, lease, this.leaseMs);
    this.ensureTimer();
    let u: Upload | undefined;
    const renew = setInterval(
      () =>
        void this.uploads.renew(token, lease, this.leaseMs).then(
          (held) => {
            if (!held && u) u.leaseLost = true;
          },
          (err: unknown) => this.log.warn({ err, token: token.slice(0, 8) }, 'cannot renew an upload lease'),
        ),
      Math.max(100, Math.floor(this.leaseMs / 4)),
    );
    renew.unref();
    try {
      const taken = await this.uploads.take(token, lease);
      u = taken.u;
      return await this.write(u, taken.row, body, part);
    } finally {
      clearInterval(renew);
      if (u?.lease === lease) u.lease = undefined;
      await this.uploads.release(token, lease).catch((err: unknown) => this.log.warn({ err }, 'cannot release an upload lease'));
    }
  }

  /** The PUT itself, holding the upload's lease. */
  private async write(u: Upload, row: UploadRow, body: AsyncIterable<Buffer | string>, part: UploadPart): Promise<UploadStatus> {
    const lease = u.lease!;
    if (part.offset !== u.offset) {
      throw new Refusal(
        'conflict',
        `offset mismatch: this upload has received ${u.offset} bytes, the request starts at ${part.offset}; resume with X-Offset: ${u.offset}`,
        u.offset,
      );
    }
    const total = part.total ?? u.total;
    this.checkTotal(u, part.total);
    const image = await this.images.get(u.start.imageUuid);
    if (!image || image.status !== 'Downloading') {
      await this.fail(u, this.deleted(u));
      throw new Refusal('gone', `image[uuid:${u.start.imageUuid}] was deleted while it was being uploaded; the upload was removed`);
    }
    u.total = total;
    await this.startFlowing(u, row);
    u.state = 'Running';

    const limit = total ?? u.limit;
    const from = u.offset;
    const it = body[Symbol.asyncIterator]();
    let brokeOff = false;
    for (;;) {
      let next: IteratorResult<Buffer | string>;
      try {
        next = await it.next();
      } catch {
        // The client went away mid-body: what arrived is kept, HEAD tells where to resume.
        this.log.info({ image: u.start.imageUuid, offset: u.offset }, 'upload request broke off; the client may resume');
        brokeOff = true;
        break;
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
      if (u.leaseLost) break;
      try {
        await Promise.all([writeChunk(u.sink!, chunk), u.md!.update(chunk)]);
      } catch (err) {
        throw await this.storageFailure(u, u.streamError ?? err);
      }
      u.offset += chunk.length;
    }
    if (u.streamError) throw await this.storageFailure(u, u.streamError);
    const complete = !brokeOff && !(part.length !== undefined && u.offset - from < part.length);
    // A PUT that lost its lease (stalled past it) never commits: settle() refuses it.
    if (complete && !u.leaseLost && ((total !== undefined && u.offset === total) || part.complete)) {
      await this.finish(u);
    } else {
      await this.settle(u, lease);
    }
    return {
      imageUuid: u.start.imageUuid,
      state: u.state,
      offset: u.offset,
      ...(u.total !== undefined ? { total: u.total } : {}),
    };
  }

  /** A declared total must match the one declared before, cover the bytes received and fit the storages. */
  private checkTotal(u: Upload, total: number | undefined): void {
    if (total === undefined) return;
    if (u.total !== undefined && u.total !== total) {
      throw new Refusal('invalid', `the declared image size ${total} differs from the size declared before (${u.total})`, u.offset);
    }
    if (total < u.offset) {
      throw new Refusal('invalid', `the declared image size ${total} is less than the ${u.offset} bytes already received`, u.offset);
    }
    if (total > u.limit) {
      throw new Refusal(
        'too-large',
        `the image is ${total} bytes but ${this.capacityText(u)}; free space or choose another backup storage`,
        u.offset,
      );
    }
  }

  /** The PUT ends short of the last byte: its bytes are synced and recorded, for the next PUT on any node. */
  private async settle(u: Upload, lease: string): Promise<void> {
    try {
      await suspendImports(u);
    } catch (err) {
      throw await this.storageFailure(u, err);
    }
    const recorded = await this.uploads.progress(u, lease, {
      received: u.offset,
      total_size: u.total ?? null,
      writer: lease,
      state: 'Running',
    });
    if (!recorded || u.leaseLost) {
      // Another PUT took the upload over while this node stalled: what it wrote past the record is dropped.
      u.md?.destroy();
      u.md = undefined;
      throw new Refusal(
        'conflict',
        'this request lost its hold on the upload (it stalled too long); HEAD on this URL tells the offset to resume from',
      );
    }
    u.writer = lease;
  }

  /** Opens (or resumes) the storages' import targets and the running digests for this PUT. */
  private async startFlowing(u: Upload, row: UploadRow): Promise<void> {
    try {
      await openUploadImports(u, row, this.uploads, this.log);
    } catch (err) {
      if (err instanceof Refusal) throw err;
      throw await this.storageFailure(u, err);
    }
    if (u.sink) return;
    u.sink = importSink(u.imports);
    u.sink.on('error', (err: unknown) => {
      u.streamError ??= err;
    });
  }

  private deleted(u: Upload): ZStackError {
    return new ZStackError(
      'SYS.1006',
      `image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] was deleted while it was being uploaded`,
    );
  }

  /** The last byte arrived: the import step (checks, commit, measure, Ready), or remove everything. */
  private async finish(u: Upload): Promise<void> {
    const { start } = u;
    let digests: DigestResult;
    try {
      await endSink(u);
      digests = await u.md!.digest();
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
        deleted: () => this.deleted(u),
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
    for (const t of start.targets) this.events.bytesImported(t.type, u.offset);
    await this.uploads.succeeded(u);
    u.md = undefined;
    u.sink = undefined;
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

  /** Removes everything of a failed upload and records why, for every node. */
  private async fail(u: Upload, err: unknown): Promise<ZStackError> {
    const zerr =
      err instanceof ZStackError
        ? err
        : new ZStackError('SYS.1006', `upload of image[name:${u.start.imageName}] failed: ${(err as Error)?.message ?? String(err)}`);
    if (!this.uploads.failed(u, zerr)) return u.error!;
    u.md?.destroy();
    if (u.sink && !u.sink.destroyed) u.sink.destroy();
    const drivers = u.start.targets.map((t) => t.driver);
    try {
      await this.step.rollback(u.start.imageUuid, u.imports, drivers);
      // Partial bytes this process has no writer for (an earlier PUT, maybe on another node).
      for (const d of drivers) await d.discard(u.start.imageUuid);
    } catch (e) {
      this.log.warn({ err: e, image: u.start.imageUuid }, 'cannot remove every trace of a failed upload');
    }
    await this.uploads
      .recordFailure(u)
      .catch((e: unknown) => this.log.warn({ err: e, image: u.start.imageUuid }, 'cannot record a failed upload'));
    u.md = undefined;
    u.sink = undefined;
    u.imports = [];
    this.log.info({ image: u.start.imageUuid, error: zerr.details }, 'upload failed; the image was removed');
    if (zerr.audit) this.log.warn({ ...zerr.audit, image: u.start.imageUuid }, 'security event');
    return zerr;
  }

  private capacityText(u: Upload): string {
    const t = u.start.targets.find((x) => x.available === u.limit) ?? u.start.targets[0]!;
    return `backup storage[uuid:${t.uuid}, name:${t.name}] has only ${u.limit} bytes available`;
  }

  /** Removes idle uploads and forgets finished ones (upload-sweep.ts); runs periodically on every node. */
  sweepExpired(now = Date.now()): Promise<number> {
    return sweepUploads(this.uploads, this, now, (u, why) => this.fail(u, why), this.log);
  }

  /**
   * At start-up: forgets unfinished uploads whose image is gone (an interrupted add was removed), then sweeps
   * periodically: every node does, so uploads expire whichever nodes are up.
   */
  async cleanupInterrupted(): Promise<number> {
    const forgotten = await this.uploads.purgeOrphans();
    this.ensureTimer();
    return forgotten;
  }

  private ensureTimer(): void {
    if (this.timer) return;
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.idleTimeoutMs / 4)));
    this.timer = setInterval(() => void this.sweepExpired().catch((err) => this.log.warn({ err }, 'upload sweep failed')), every);
    this.timer.unref();
  }

  /** Stops the periodic sweep (it starts again with the next upload on this node). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
