import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { Db } from '../db/connect.js';
import type { MultiDigest } from '../hashing/engine.js';
import { Refusal, StorageError, type ZStackError } from '../lib/errors.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import type { ImportTarget } from '../storage/driver.js';
import type { BackupStorageService } from './backup-storage.js';
import type { ImportChecks, ImportStorage } from './image-import.js';
import { jsonList, recordedError, UploadStateStore, type UploadProgress, type UploadRow, type UploadState } from './upload-state.js';

export type { UploadState };

/** 192 random bits, hex: the only credential of an upload. */
const TOKEN_RE = /^[0-9a-f]{48}$/;
export const DEFAULT_UPLOAD_IDLE_TIMEOUT_MS = 24 * 3600 * 1000;
/** Finished uploads stay visible to GetUploadImageJobDetails as long as ZStack keeps job results. */
export const KEEP_FINISHED_MS = 3 * 3600 * 1000;

/** What ImageAdder hands over once the image and its refs are recorded `Downloading`. */
export interface UploadStart {
  imageUuid: string;
  imageName: string;
  /** The AddImage job: GetUploadImageJobDetails' longJobUuid. */
  jobUuid: string;
  /** e.g. http://10.0.0.5:8080: the upload URL is absolute. */
  baseUrl: string;
  targets: ImportStorage[];
  /** The add's checks, so an upload is judged exactly like a URL add (recorded, so that any node can judge it). */
  checks: ImportChecks;
}

export interface UploadStatus {
  imageUuid: string;
  state: UploadState;
  offset: number;
  total?: number;
  error?: ZStackError;
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

/**
 * Every upload's state (Waiting → Running → Succeeded | Failed), owned here: the rows in the database, shared
 * by every node (UploadStateStore), and this node's working copies of the uploads it has worked on (a cache:
 * the rows decide). Refuses a PUT by the state its row records.
 */
export class UploadRegistry {
  private readonly byToken = new Map<string, Upload>();
  private readonly rows: UploadStateStore;

  constructor(
    db: Db,
    private readonly storages: BackupStorageService,
    /** This node (ZIMAGE_NODE_ID): recorded as the owner of the uploads it begins. */
    readonly nodeId: string,
    /** Registers DeleteImage's hold on an upload this node works on; returns its release. */
    private readonly hold: (u: Upload) => () => void,
  ) {
    this.rows = new UploadStateStore(db);
  }

  /** A new upload, Waiting for its first byte, at `<baseUrl><path>/<token>`; recorded by record(). */
  open(start: UploadStart, path: string): Upload {
    const token = randomBytes(24).toString('hex');
    return {
      token,
      url: `${start.baseUrl.replace(/\/+$/, '')}${path}/${token}`,
      start,
      limit: Math.min(...start.targets.map((t) => t.available)),
      state: 'Waiting',
      offset: 0,
      ownerNode: this.nodeId,
      imports: [],
    };
  }

  /** Records a new upload for every node and keeps its working copy here. */
  async record(u: Upload): Promise<void> {
    const now = Date.now();
    const { start } = u;
    await this.rows.insert({
      token: u.token,
      image_uuid: start.imageUuid,
      image_name: start.imageName,
      job_uuid: start.jobUuid,
      url: u.url,
      storage_uuids: JSON.stringify(start.targets.map((t) => t.uuid)),
      temp_names: null,
      expected_digests: JSON.stringify(Object.fromEntries(start.checks.expected)),
      declared_format: start.checks.declaredFormat ?? null,
      state: 'Waiting',
      received: 0,
      total_size: null,
      size_limit: u.limit,
      error: null,
      owner_node: u.ownerNode,
      writer: null,
      lease_holder: null,
      lease_until: null,
      last_activity: now,
      ended_date: null,
      create_date: now,
    });
    this.track(u);
  }

  private row(token: string): Promise<UploadRow | undefined> {
    return TOKEN_RE.test(token) ? this.rows.get(token) : Promise.resolve(undefined);
  }

  /** HEAD/GET on the upload URL. Undefined for an unknown token. */
  async status(token: string): Promise<UploadStatus | undefined> {
    const row = await this.row(token);
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
    const row = await this.rows.byImage(imageUuid);
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
   * Takes the upload for one PUT under `lease`, on whichever node: an unknown token is not-found, a finished
   * upload conflict (Succeeded) or gone (Failed), one a PUT holds now (on any node) conflict.
   */
  async claim(token: string, lease: string, leaseMs: number): Promise<void> {
    const row = await this.row(token);
    if (!row) {
      throw new Refusal(
        'not-found',
        'no upload at this URL: it is mistyped, expired, or zimage restarted since AddImage (an unfinished upload does not survive a restart); add the image again',
      );
    }
    this.refuseEnded(row);
    if (!(await this.rows.claim(token, lease, Date.now(), leaseMs))) {
      throw new Refusal(
        'conflict',
        `another request is uploading to this URL right now; wait for it to end (HEAD on this URL tells the offset, now ${row.received})`,
        row.received,
      );
    }
  }

  /** The working copy of a claimed upload, brought up to its record (rebuilt from it when another node began it). */
  async take(token: string, lease: string): Promise<{ u: Upload; row: UploadRow }> {
    const row = (await this.rows.get(token))!;
    this.refuseEnded(row);
    const u = await this.load(row);
    u.lease = lease;
    u.leaseLost = false;
    return { u, row };
  }

  /** Succeeded: conflict with the size; Failed: gone with the reason. */
  private refuseEnded(row: UploadRow): void {
    if (row.state === 'Succeeded') {
      throw new Refusal(
        'conflict',
        `the upload of image[uuid:${row.image_uuid}] is already complete (${row.received} bytes); the image is Ready`,
        row.received,
      );
    }
    if (row.state === 'Failed') {
      throw new Refusal(
        'gone',
        `the upload of image[uuid:${row.image_uuid}] failed and was removed: ${recordedError(row)?.details ?? 'unknown error'}; add the image again`,
      );
    }
  }

  /** What a PUT to an upload that failed on this node is told. */
  goneRefusal(u: Upload): Refusal {
    return new Refusal(
      'gone',
      `the upload of image[uuid:${u.start.imageUuid}] failed and was removed: ${u.error?.details ?? 'unknown error'}; add the image again`,
    );
  }

  /** Extends a PUT's lease; false when another PUT took the upload over. */
  renew(token: string, lease: string, leaseMs: number): Promise<boolean> {
    return this.rows.renew(token, lease, Date.now(), leaseMs);
  }

  release(token: string, lease: string): Promise<void> {
    return this.rows.release(token, lease);
  }

  /** Records what the PUT holding the lease did; false when it lost the lease. */
  progress(u: Upload, lease: string, change: UploadProgress): Promise<boolean> {
    return this.rows.progress(u.token, lease, change, Date.now());
  }

  /** The image is Ready: recorded for every node (GetUploadImageJobDetails) until it is purged. */
  async succeeded(u: Upload): Promise<void> {
    u.state = 'Succeeded';
    await this.rows.end(u.token, 'Succeeded', Date.now(), u.offset);
    this.forget(u);
  }

  /** The upload failed for `error`; false when it had already failed (the first reason is kept). Recorded by recordFailure. */
  failed(u: Upload, error: ZStackError): boolean {
    if (u.state === 'Failed' && u.error) return false;
    u.state = 'Failed';
    u.error = error;
    this.forget(u);
    return true;
  }

  recordFailure(u: Upload): Promise<void> {
    return this.rows.end(u.token, 'Failed', Date.now(), u.offset, u.error);
  }

  /** Unfinished uploads with no bytes since `idleBefore` and no PUT running (for the sweep). */
  idle(idleBefore: number, now: number): Promise<UploadRow[]> {
    return this.rows.idle(idleBefore, now);
  }

  /** Takes an idle upload for the sweep under `lease`; false when a PUT took it meanwhile. */
  claimIdle(token: string, lease: string, now: number, leaseMs: number): Promise<boolean> {
    return this.rows.claim(token, lease, now, leaseMs);
  }

  /** Forgets ended uploads older than `endedBefore`, and this node's copies of uploads ended or moved on elsewhere. */
  async purge(endedBefore: number): Promise<void> {
    await this.rows.purgeEnded(endedBefore);
    for (const u of [...this.byToken.values()]) {
      if (u.lease) continue;
      const row = await this.rows.get(u.token);
      if (!row || row.state === 'Succeeded' || row.state === 'Failed') {
        this.forget(u);
        u.md?.destroy();
      } else if (u.md && row.writer !== u.writer && u.imports.length === 0) {
        // Another node wrote since: these running digests are outdated.
        u.md.destroy();
        u.md = undefined;
      }
    }
  }

  /** Forgets unfinished uploads whose image is gone (an interrupted add removed at start-up); how many. */
  purgeOrphans(): Promise<number> {
    return this.rows.purgeOrphans();
  }

  /** This node's copy of an upload, brought up to the database's record (targets rebuilt for another node's). */
  async load(row: UploadRow): Promise<Upload> {
    let u = this.byToken.get(row.token);
    if (!u) {
      const start = await this.startOf(row).catch((err: unknown) => {
        throw err instanceof StorageError ? new Refusal('gone', `${err.message}; add the image again`) : err;
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

  /** An upload's storages and checks, rebuilt from its row (on any node). */
  private async startOf(row: UploadRow): Promise<UploadStart> {
    const targets: ImportStorage[] = [];
    for (const uuid of jsonList(row.storage_uuids)) {
      const bs = await this.storages.get(uuid);
      if (!bs) throw new StorageError('not-found', `the backup storage[uuid:${uuid}] of this upload was deleted`);
      targets.push({ uuid, name: bs.name, type: bs.type, driver: this.storages.driver(bs), available: bs.available_capacity });
    }
    const expected = new Map(Object.entries(JSON.parse(row.expected_digests) as Record<string, string>));
    return {
      imageUuid: row.image_uuid,
      imageName: row.image_name,
      jobUuid: row.job_uuid,
      baseUrl: '',
      targets,
      checks: { expected, ...(row.declared_format ? { declaredFormat: row.declared_format } : {}) },
    };
  }

  private track(u: Upload): Upload {
    this.byToken.set(u.token, u);
    // DeleteImage on this node stops the upload: its bytes go, its PUTs are refused as gone (other nodes see the image gone).
    u.unregister = this.hold(u);
    return u;
  }

  private forget(u: Upload): void {
    u.unregister?.();
    if (this.byToken.get(u.token) === u) this.byToken.delete(u.token);
  }
}
