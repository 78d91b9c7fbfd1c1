import { fanOut, writeChunk } from './fan-out.js';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { ServiceEvents } from '../observability/events.js';
import type { DigestResult } from '../hashing/algorithms.js';
import type { MultiDigest } from '../hashing/engine.js';
import { RestError, StorageError, ZStackError } from '../lib/errors.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import type { BackupStorageDriver, ImportTarget } from '../storage/driver.js';
import { endSink, LOCAL_STORAGE_TYPE, openUploadImports, suspendImports, UploadBoundToNode, uploadStartOf } from './upload-resume.js';
import { newUploadRow, recordedError, UploadStateStore, type UploadRow, type UploadState } from './upload-state.js';
import type { BackupStorageService } from './backup-storage.js';
import { DigestStore } from './digests.js';
import type { ImageStore } from './images.js';
import { measureCopy, type MeasuredCopy } from './measure.js';

/** Where upload URLs live, below the server's base URL (outside ZStack's /zstack/v1). */
export const UPLOAD_PATH = '/zimage/v1/uploads';
/** 192 random bits, hex: the only credential of an upload. */
const TOKEN_RE = /^[0-9a-f]{48}$/;
export const DEFAULT_UPLOAD_IDLE_TIMEOUT_MS = 24 * 3600 * 1000;
/** Finished uploads stay visible to GetUploadImageJobDetails as long as ZStack keeps job results. */
const KEEP_FINISHED_MS = 3 * 3600 * 1000;
/** How long a PUT holds an upload without renewing (a node that dies mid-PUT blocks its upload this long). */
const LEASE_MS = 20_000;

export interface UploadTarget {
  uuid: string;
  name: string;
  /** The storage type (local, sftp, ceph), for metrics. */
  type: string;
  driver: BackupStorageDriver;
  available: number;
}

/** What ImageAdder hands over once the image and its refs are recorded `Downloading`. */
export interface UploadStart {
  imageUuid: string;
  imageName: string;
  /** The AddImage job: GetUploadImageJobDetails' longJobUuid. */
  jobUuid: string;
  /** e.g. http://10.0.0.5:8080: the upload URL is absolute. */
  baseUrl: string;
  targets: UploadTarget[];
  /** ImageAdder's own checks, so an upload is judged exactly like a URL add. */
  checkExpected(digests: DigestResult): void;
  checkFormat(detected: string): void;
  /** Removes every trace of the image (bytes, refs, digests, tags, row). */
  rollback(imports: ImportTarget[]): Promise<void>;
  /** What checkExpected and checkFormat compare with: recorded, so that any node can rebuild them. */
  expected: Record<string, string>;
  declaredFormat?: string;
}

/** ImageAdder's checks and rollback for an upload, from what the upload state records (any node). */
export type UploadHooks = (
  imageUuid: string,
  expected: Record<string, string>,
  declaredFormat: string | undefined,
  drivers: BackupStorageDriver[],
) => Pick<UploadStart, 'checkExpected' | 'checkFormat' | 'rollback'>;

/** One PUT: where the client says its bytes start, the declared total, and whether this is the last part. */
export interface UploadPart {
  offset: number;
  total?: number;
  complete: boolean;
  /** The request's Content-Length: a body that ends short of it broke off and never completes the upload. */
  length?: number;
}

export type { UploadState };

export interface UploadStatus {
  imageUuid: string;
  state: UploadState;
  offset: number;
  total?: number;
  error?: ZStackError;
}

/** A data-plane answer other than success: plain text, its status, and the offset when the client needs it. */
export class UploadError extends RestError {
  constructor(
    statusCode: number,
    message: string,
    readonly offset?: number,
  ) {
    super(statusCode, message);
    this.name = 'UploadError';
  }
}

/** This node's working copy of one upload; the database row (upload-state.ts) is the truth between PUTs. */
export interface Upload {
  token: string;
  url: string;
  start: UploadStart;
  limit: number;
  state: UploadState;
  offset: number;
  total?: number;
  /** The node that answered AddImage. */
  ownerNode: string;
  /** The lease of the PUT (or the finishing after it) running on this node. */
  lease?: string;
  /** The lease was taken over (this node stalled past it): the PUT must stop writing. */
  leaseLost?: boolean;
  imports: ImportTarget[];
  /** imports' streams (fanned out); kept between PUTs only for storages that cannot resume an import. */
  sink?: Writable;
  /** Running digests of the bytes so far, valid while the database names `writer` as the last writer. */
  md?: MultiDigest;
  writer?: string;
  streamError?: unknown;
  error?: ZStackError;
  /** Ends DeleteImage's hold on this upload (see AddsInFlight). */
  unregister?: () => void;
}

const isNoSpace = (err: unknown) =>
  (err instanceof StorageError && err.kind === 'no-space') || (err as NodeJS.ErrnoException)?.code === 'ENOSPC';

/**
 * AddImage with `upload://`: the image is recorded `Downloading` and answered at once with an upload URL;
 * the client PUTs the bytes there, in one request or resumed from an offset. Every byte is hashed (MD5 +
 * SHA-256) as it is written into the storages' import targets. The last byte commits, inspects, measures and
 * turns the image Ready with ImageAdder's own checks; any failure removes everything and is kept for
 * GetUploadImageJobDetails.
 *
 * The upload state lives in the database (upload-state.ts), so any node may take the next PUT: one PUT at a
 * time holds the row's lease; on storages that can resume an import (SFTP, local directory) each PUT ends by
 * syncing its bytes, and a node continuing an upload whose running digests it does not hold rebuilds them
 * once by re-reading the stored bytes. A local directory is bound to its node (upload-resume.ts). Uploads
 * that receive no bytes for `idleTimeoutMs` (default 24 h) are removed by the sweep of any node.
 */
export class ImageUploadService {
  /** Uploads this node has worked on (a cache: the database decides). */
  private readonly byToken = new Map<string, Upload>();
  private readonly state: UploadStateStore;
  private timer: NodeJS.Timeout | undefined;
  /** An upload that received no bytes for this long is removed (default 24 h). */
  idleTimeoutMs = DEFAULT_UPLOAD_IDLE_TIMEOUT_MS;
  /** Finished (succeeded or failed) uploads are remembered this long for GetUploadImageJobDetails. */
  keepFinishedMs = KEEP_FINISHED_MS;
  leaseMs = LEASE_MS;
  /** This node (ZIMAGE_NODE_ID): recorded as the owner of the uploads it begins. */
  nodeId = 'node-1';

  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly log: Logger,
    private readonly events: ServiceEvents,
    private readonly hooks: UploadHooks,
  ) {
    this.state = new UploadStateStore(images.db);
  }

  /** Registers the upload, puts its URL in the image's `url` and answers the AddImage job. */
  async begin(start: UploadStart): Promise<Record<string, unknown>> {
    const token = randomBytes(24).toString('hex');
    const url = `${start.baseUrl.replace(/\/+$/, '')}${UPLOAD_PATH}/${token}`;
    const now = Date.now();
    const limit = Math.min(...start.targets.map((t) => t.available));
    try {
      await this.images.db.updateTable('image').set({ url, last_op_date: Date.now() }).where('uuid', '=', start.imageUuid).execute();
      await this.state.insert(newUploadRow(token, url, start, limit, this.nodeId, now));
    } catch (err) {
      await start.rollback([]);
      throw err;
    }
    this.track({ token, url, start, limit, state: 'Waiting', offset: 0, ownerNode: this.nodeId, imports: [] });
    this.ensureTimer();
    return { inventory: await this.images.inventory(start.imageUuid) };
  }

  /** HEAD/GET on the upload URL. Undefined for an unknown token. */
  async status(token: string): Promise<UploadStatus | undefined> {
    const row = TOKEN_RE.test(token) ? await this.state.get(token) : undefined;
    if (!row) return undefined;
    const { state, offset } = this.live(row);
    const error = recordedError(row);
    return {
      imageUuid: row.image_uuid,
      state,
      offset,
      ...(row.total_size !== null ? { total: row.total_size } : {}),
      ...(error ? { error } : {}),
    };
  }

  /** GetUploadImageJobDetails. */
  async jobDetails(imageUuid: string): Promise<Record<string, unknown>[]> {
    const row = await this.state.byImage(imageUuid);
    if (!row) return [];
    const { state, offset } = this.live(row);
    const error = recordedError(row);
    return [
      withClass(INVENTORY_CLASS.uploadJobDetails, {
        longJobUuid: row.job_uuid,
        longJobState: state,
        imageUuid,
        imageUploadUrl: row.url,
        offset,
        // zimage extensions: the declared size, and why a failed upload failed.
        ...(row.total_size !== null ? { totalSize: row.total_size } : {}),
        ...(error ? { error: error.toBody() } : {}),
      }),
    ];
  }

  /** State and offset of an upload: a PUT running on this node knows more than the last record (its PUT's end). */
  private live(row: UploadRow): { state: UploadState; offset: number } {
    const u = this.byToken.get(row.token);
    if (u?.lease && u.state === 'Running' && (row.state === 'Waiting' || row.state === 'Running')) {
      return { state: 'Running', offset: Math.max(u.offset, row.received) };
    }
    return { state: row.state as UploadState, offset: row.received };
  }

  /**
   * One PUT of bytes. Appends `body` at `part.offset` (which must be the bytes received so far), and
   * finishes the add when the declared total is reached or the client says the upload is complete.
   * Errors are UploadError (plain text with a status for the data plane).
   */
  async receive(token: string, body: AsyncIterable<Buffer | string>, part: UploadPart): Promise<UploadStatus> {
    const row = TOKEN_RE.test(token) ? await this.state.get(token) : undefined;
    if (!row) {
      throw new UploadError(
        404,
        'no upload at this URL: it is mistyped, expired, or zimage restarted since AddImage (an unfinished upload does not survive a restart); add the image again',
      );
    }
    this.refuseEnded(row);
    const lease = randomBytes(12).toString('hex');
    if (!(await this.state.claim(token, lease, Date.now(), this.leaseMs))) {
      throw new UploadError(
        409,
        `another request is uploading to this URL right now; wait for it to end (HEAD on this URL tells the offset, now ${row.received})`,
        row.received,
      );
    }
    this.ensureTimer();
    let u: Upload | undefined;
    const renew = setInterval(
      () =>
        void this.state.renew(token, lease, Date.now(), this.leaseMs).then(
          (held) => {
            if (!held && u) u.leaseLost = true;
          },
          (err: unknown) => this.log.warn({ err, token: token.slice(0, 8) }, 'cannot renew an upload lease'),
        ),
      Math.max(100, Math.floor(this.leaseMs / 4)),
    );
    renew.unref();
    try {
      const fresh = (await this.state.get(token))!;
      this.refuseEnded(fresh);
      u = await this.load(fresh);
      u.lease = lease;
      u.leaseLost = false;
      return await this.write(u, fresh, body, part);
    } finally {
      clearInterval(renew);
      if (u?.lease === lease) u.lease = undefined;
      await this.state.release(token, lease).catch((err: unknown) => this.log.warn({ err }, 'cannot release an upload lease'));
    }
  }

  /** Succeeded: 409 with the size; Failed: 410 with the reason. */
  private refuseEnded(row: UploadRow): void {
    if (row.state === 'Succeeded') {
      throw new UploadError(
        409,
        `the upload of image[uuid:${row.image_uuid}] is already complete (${row.received} bytes); the image is Ready`,
        row.received,
      );
    }
    if (row.state === 'Failed') {
      throw new UploadError(
        410,
        `the upload of image[uuid:${row.image_uuid}] failed and was removed: ${recordedError(row)?.details ?? 'unknown error'}; add the image again`,
      );
    }
  }

  /** The PUT itself, holding the upload's lease. */
  private async write(u: Upload, row: UploadRow, body: AsyncIterable<Buffer | string>, part: UploadPart): Promise<UploadStatus> {
    const lease = u.lease!;
    if (part.offset !== u.offset) {
      throw new UploadError(
        409,
        `offset mismatch: this upload has received ${u.offset} bytes, the request starts at ${part.offset}; resume with X-Offset: ${u.offset}`,
        u.offset,
      );
    }
    const total = part.total ?? u.total;
    if (part.total !== undefined) {
      if (u.total !== undefined && u.total !== part.total) {
        throw new UploadError(400, `the declared image size ${part.total} differs from the size declared before (${u.total})`, u.offset);
      }
      if (part.total < u.offset) {
        throw new UploadError(400, `the declared image size ${part.total} is less than the ${u.offset} bytes already received`, u.offset);
      }
      if (part.total > u.limit) {
        throw new UploadError(
          413,
          `the image is ${part.total} bytes but ${this.capacityText(u)}; free space or choose another backup storage`,
          u.offset,
        );
      }
    }
    const image = await this.images.get(u.start.imageUuid);
    if (!image || image.status !== 'Downloading') {
      await this.fail(
        u,
        new ZStackError('SYS.1006', `image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] was deleted while it was being uploaded`),
      );
      throw new UploadError(410, `image[uuid:${u.start.imageUuid}] was deleted while it was being uploaded; the upload was removed`);
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
        throw new UploadError(total !== undefined ? 400 : 413, `${why}; the upload was removed, add the image again`);
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
    // A PUT that lost its lease (stalled past it) never commits: settle() answers 409.
    if (complete && !u.leaseLost && ((total !== undefined && u.offset === total) || part.complete)) {
      await this.finish(u);
      return this.statusOf(u);
    }
    await this.settle(u, lease);
    return this.statusOf(u);
  }

  /** The PUT ends short of the last byte: its bytes are synced and recorded, for the next PUT on any node. */
  private async settle(u: Upload, lease: string): Promise<void> {
    try {
      await suspendImports(u);
    } catch (err) {
      throw await this.storageFailure(u, err);
    }
    const recorded = await this.state.progress(
      u.token,
      lease,
      { received: u.offset, total_size: u.total ?? null, writer: lease, state: 'Running' },
      Date.now(),
    );
    if (!recorded || u.leaseLost) {
      // Another PUT took the upload over while this node stalled: what it wrote past the record is dropped.
      u.md?.destroy();
      u.md = undefined;
      throw new UploadError(
        409,
        'this request lost its hold on the upload (it stalled too long); HEAD on this URL tells the offset to resume from',
      );
    }
    u.writer = lease;
  }

  private statusOf(u: Upload): UploadStatus {
    return {
      imageUuid: u.start.imageUuid,
      state: u.state,
      offset: u.offset,
      ...(u.total !== undefined ? { total: u.total } : {}),
      ...(u.error ? { error: u.error } : {}),
    };
  }

  /** This node's copy of an upload, brought up to the database's record (targets rebuilt for another node's). */
  private async load(row: UploadRow): Promise<Upload> {
    let u = this.byToken.get(row.token);
    if (!u) {
      const start = await uploadStartOf(row, this.storages, this.hooks).catch((err: unknown) => {
        throw err instanceof StorageError ? new UploadError(410, `${err.message}; add the image again`) : err;
      });
      u = this.track({
        token: row.token,
        url: row.url,
        start,
        limit: row.size_limit,
        state: 'Waiting',
        offset: 0,
        ownerNode: row.owner_node,
        imports: [],
      });
    }
    u.state = row.state as UploadState;
    u.offset = row.received;
    u.total = row.total_size ?? undefined;
    return u;
  }

  private track(u: Upload): Upload {
    this.byToken.set(u.token, u);
    // DeleteImage on this node stops the upload: its bytes go, its PUTs answer 410 (other nodes see the image gone).
    u.unregister = this.images.addsInFlight.register(u.start.imageUuid, (reason) => this.fail(u, reason));
    return u;
  }

  /** Opens (or resumes) the storages' import targets and the running digests for this PUT. */
  private async startFlowing(u: Upload, row: UploadRow): Promise<void> {
    try {
      await openUploadImports(u, row, this.nodeId, this.state, this.log);
    } catch (err) {
      if (err instanceof UploadBoundToNode) throw new UploadError(421, err.message, u.offset);
      throw await this.storageFailure(u, err);
    }
    if (u.sink) return;
    u.sink = u.imports.length === 1 ? u.imports[0]!.stream : fanOut(u.imports.map((i) => i.stream));
    u.sink.on('error', (err: unknown) => {
      u.streamError ??= err;
    });
  }

  /** The last byte arrived: commit, inspect, measure, go Ready (ImageAdder's checks), or remove everything. */
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
      start.checkExpected(digests);
      for (const i of u.imports) await i.commit();
      const measured: MeasuredCopy[] = [];
      for (const [n, t] of start.targets.entries()) {
        const m = await measureCopy(t.driver, u.imports[n]!.installPath, { uuid: t.uuid, name: t.name });
        start.checkFormat(m.format);
        measured.push(m);
      }
      const first = measured[0]!;
      const done = Date.now();
      await this.images.db.transaction().execute(async (trx) => {
        const res = await trx
          .updateTable('image')
          .set({
            status: 'Ready',
            size: first.virtualSize,
            actual_size: Math.max(...measured.map((m) => m.actualSize)),
            md5_sum: digests.MD5 ?? null,
            format: first.format,
            last_op_date: done,
          })
          .where('uuid', '=', start.imageUuid)
          .where('status', '=', 'Downloading')
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) !== 1) {
          throw new ZStackError(
            'SYS.1006',
            `image[uuid:${start.imageUuid}, name:${start.imageName}] was deleted while it was being uploaded`,
          );
        }
        for (const [n, t] of start.targets.entries()) {
          await trx
            .updateTable('image_backup_storage_ref')
            .set({ status: 'Ready', install_path: u.imports[n]!.installPath, last_op_date: done })
            .where('image_uuid', '=', start.imageUuid)
            .where('backup_storage_uuid', '=', t.uuid)
            .execute();
          await new DigestStore(trx).record(start.imageUuid, t.uuid, digests, 'import', done);
        }
      });
    } catch (err) {
      if (!(err instanceof ZStackError) && (err instanceof StorageError || typeof (err as NodeJS.ErrnoException)?.code === 'string')) {
        throw await this.storageFailure(u, err);
      }
      const paths = u.imports.map((i) => i.installPath);
      const zerr = await this.fail(u, err);
      // The token is the only credential here: storage paths stay out of the answer (the API has the full text).
      const details = paths.reduce((text, p) => text.split(p).join('(the uploaded image)'), zerr.details);
      throw new UploadError(
        422,
        `the upload of image[uuid:${start.imageUuid}, name:${start.imageName}] was refused: ${details}; the image and its bytes were removed`,
      );
    }
    for (const t of start.targets) this.events.bytesImported(t.type, u.offset);
    u.state = 'Succeeded';
    await this.state.end(u.token, 'Succeeded', Date.now(), u.offset);
    this.forget(u);
    await Promise.all(start.targets.map((t) => this.storages.refreshCapacity(t.uuid)));
  }

  /** A failure of the storage side: the upload is removed; 507 when out of space, else 503. */
  private async storageFailure(u: Upload, err: unknown): Promise<UploadError> {
    if (u.state === 'Failed' && u.error) {
      return new UploadError(
        410,
        `the upload of image[uuid:${u.start.imageUuid}] failed and was removed: ${u.error.details}; add the image again`,
      );
    }
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
    return new UploadError(
      isNoSpace(err) ? 507 : 503,
      `${what}; the upload of image[uuid:${u.start.imageUuid}] was removed (GetUploadImageJobDetails tells why), add the image again`,
    );
  }

  /** Removes everything of a failed upload and remembers why. */
  private async fail(u: Upload, err: unknown): Promise<ZStackError> {
    if (u.state === 'Failed' && u.error) return u.error;
    const zerr =
      err instanceof ZStackError
        ? err
        : new ZStackError('SYS.1006', `upload of image[name:${u.start.imageName}] failed: ${(err as Error)?.message ?? String(err)}`);
    u.state = 'Failed';
    u.error = zerr;
    this.forget(u);
    u.md?.destroy();
    if (u.sink && !u.sink.destroyed) u.sink.destroy();
    try {
      await u.start.rollback(u.imports);
      // Partial bytes this process has no writer for (an earlier PUT, maybe on another node).
      for (const t of u.start.targets) await t.driver.discard(u.start.imageUuid);
    } catch (e) {
      this.log.warn({ err: e, image: u.start.imageUuid }, 'cannot remove every trace of a failed upload');
    }
    await this.state
      .end(u.token, 'Failed', Date.now(), u.offset, zerr)
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

  /**
   * Removes uploads that received no bytes for idleTimeoutMs (rows and partial bytes, as a failed add) and
   * forgets finished ones after keepFinishedMs. Any node may sweep (an upload is taken under its lease) but
   * leaves another node's local-directory uploads to that node. Runs periodically while uploads exist.
   */
  async sweepExpired(now = Date.now()): Promise<number> {
    let removed = 0;
    await this.state.purgeEnded(now - this.keepFinishedMs);
    await this.dropStale();
    for (const row of await this.state.idle(now - this.idleTimeoutMs, now)) {
      const lease = randomBytes(12).toString('hex');
      if (!(await this.state.claim(row.token, lease, now, this.leaseMs))) continue;
      try {
        const u = await this.load(row);
        if (u.ownerNode !== this.nodeId && u.start.targets.some((t) => t.type === LOCAL_STORAGE_TYPE)) continue;
        const idle = Math.round((now - row.last_activity) / 1000);
        await this.fail(
          u,
          new ZStackError(
            'SYS.1006',
            `the upload of image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] expired: no bytes for ${idle} s (limit ${Math.round(this.idleTimeoutMs / 1000)} s); the image was removed`,
          ),
        );
        removed++;
      } catch (err) {
        this.log.warn({ err, image: row.image_uuid }, 'cannot remove an expired upload');
      } finally {
        await this.state.release(row.token, lease);
      }
    }
    return removed;
  }

  /**
   * At start-up: forgets unfinished uploads whose image is gone (an interrupted add was removed), then sweeps
   * periodically: every node does, so uploads expire whichever nodes are up.
   */
  async cleanupInterrupted(): Promise<number> {
    const forgotten = await this.state.purgeOrphans();
    this.ensureTimer();
    return forgotten;
  }

  /** Forgets this node's copies of uploads that ended elsewhere, and running digests another node outdated. */
  private async dropStale(): Promise<void> {
    for (const u of [...this.byToken.values()]) {
      if (u.lease) continue;
      const row = await this.state.get(u.token);
      if (!row || row.state === 'Succeeded' || row.state === 'Failed') {
        this.forget(u);
        u.md?.destroy();
      } else if (u.md && row.writer !== u.writer && u.imports.length === 0) {
        u.md.destroy();
        u.md = undefined;
      }
    }
  }

  private forget(u: Upload): void {
    u.unregister?.();
    if (this.byToken.get(u.token) === u) this.byToken.delete(u.token);
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
