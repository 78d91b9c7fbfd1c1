import { randomBytes } from 'node:crypto';
import { Refusal, type ZStackError } from '../lib/errors.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import type { ImportTarget } from '../storage/driver.js';
import type { ImportChecks, ImportStorage, importTee } from './image-import.js';

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
  /** The add's checks, so an upload is judged exactly like a URL add. */
  checks: ImportChecks;
}

export type UploadState = 'Waiting' | 'Running' | 'Succeeded' | 'Failed';

export interface UploadStatus {
  imageUuid: string;
  state: UploadState;
  offset: number;
  total?: number;
  error?: ZStackError;
}

/** One upload: its state (kept here) and, while bytes flow, the pipeline into the storages (kept by the service). */
export interface Upload {
  token: string;
  url: string;
  start: UploadStart;
  limit: number;
  state: UploadState;
  offset: number;
  total?: number;
  /** A PUT (or the finishing after it) is running: one at a time. */
  busy: boolean;
  imports: ImportTarget[];
  tee?: ReturnType<typeof importTee>;
  /** tee → storages; settles when the last byte is written. */
  flowing?: Promise<void>;
  streamError?: unknown;
  error?: ZStackError;
  lastActivity: number;
  endedAt?: number;
  /** Ends DeleteImage's hold on this upload (see AddsInFlight). */
  unregister?: () => void;
}

/**
 * The uploads this process knows, by token and by image, and every change of their state
 * (Waiting → Running → Succeeded | Failed). In memory only: an unfinished upload does not survive a restart.
 */
export class UploadRegistry {
  private readonly byToken = new Map<string, Upload>();
  private readonly byImage = new Map<string, Upload>();

  /** A new upload, Waiting for its first byte, at `<baseUrl><path>/<token>`. */
  open(start: UploadStart, path: string): Upload {
    const token = randomBytes(24).toString('hex');
    const upload: Upload = {
      token,
      url: `${start.baseUrl.replace(/\/+$/, '')}${path}/${token}`,
      start,
      limit: Math.min(...start.targets.map((t) => t.available)),
      state: 'Waiting',
      offset: 0,
      busy: false,
      imports: [],
      lastActivity: Date.now(),
    };
    this.byToken.set(token, upload);
    this.byImage.set(start.imageUuid, upload);
    return upload;
  }

  find(token: string): Upload | undefined {
    return TOKEN_RE.test(token) ? this.byToken.get(token) : undefined;
  }

  /**
   * The upload a PUT starting at `offset` goes to, if its state takes bytes now: an unknown token is not-found,
   * a finished upload conflict (Succeeded) or gone (Failed), a busy one or another offset conflict.
   */
  admit(token: string, offset: number): Upload {
    const u = this.find(token);
    if (!u) {
      throw new Refusal(
        'not-found',
        'no upload at this URL: it is mistyped, expired, or zimage restarted since AddImage (an unfinished upload does not survive a restart); add the image again',
      );
    }
    if (u.state === 'Succeeded') {
      throw new Refusal(
        'conflict',
        `the upload of image[uuid:${u.start.imageUuid}] is already complete (${u.offset} bytes); the image is Ready`,
        u.offset,
      );
    }
    if (u.state === 'Failed') throw this.goneRefusal(u);
    if (u.busy) {
      throw new Refusal(
        'conflict',
        `another request is uploading to this URL right now; wait for it to end (HEAD on this URL tells the offset, now ${u.offset})`,
        u.offset,
      );
    }
    if (offset !== u.offset) {
      throw new Refusal(
        'conflict',
        `offset mismatch: this upload has received ${u.offset} bytes, the request starts at ${offset}; resume with X-Offset: ${u.offset}`,
        u.offset,
      );
    }
    return u;
  }

  /** What a PUT to a failed upload is told. */
  goneRefusal(u: Upload): Refusal {
    return new Refusal(
      'gone',
      `the upload of image[uuid:${u.start.imageUuid}] failed and was removed: ${u.error?.details ?? 'unknown error'}; add the image again`,
    );
  }

  /** HEAD/GET on the upload URL. Undefined for an unknown token. */
  status(token: string): UploadStatus | undefined {
    const u = this.find(token);
    if (!u) return undefined;
    return {
      imageUuid: u.start.imageUuid,
      state: u.state,
      offset: u.offset,
      ...(u.total !== undefined ? { total: u.total } : {}),
      ...(u.error ? { error: u.error } : {}),
    };
  }

  /** GetUploadImageJobDetails. */
  jobDetails(imageUuid: string): Record<string, unknown>[] {
    const u = this.byImage.get(imageUuid);
    if (!u) return [];
    return [
      withClass(INVENTORY_CLASS.uploadJobDetails, {
        longJobUuid: u.start.jobUuid,
        longJobState: u.state,
        imageUuid,
        imageUploadUrl: u.url,
        offset: u.offset,
        // zimage extensions: the declared size, and why a failed upload failed.
        ...(u.total !== undefined ? { totalSize: u.total } : {}),
        ...(u.error ? { error: u.error.toBody() } : {}),
      }),
    ];
  }

  /** Bytes flow (a PUT started). */
  running(u: Upload): void {
    u.state = 'Running';
    u.lastActivity = Date.now();
  }

  /** `n` more bytes were stored. */
  received(u: Upload, n: number): void {
    u.offset += n;
    u.lastActivity = Date.now();
  }

  /** The image is Ready: the upload is kept (for GetUploadImageJobDetails) until it is forgotten. */
  succeeded(u: Upload): void {
    u.state = 'Succeeded';
    u.endedAt = Date.now();
    u.unregister?.();
  }

  /** The upload failed for `error`; false when it had already failed (the first reason is kept). */
  failed(u: Upload, error: ZStackError): boolean {
    if (u.state === 'Failed' && u.error) return false;
    u.state = 'Failed';
    u.error = error;
    u.endedAt = Date.now();
    u.unregister?.();
    return true;
  }

  /** Every upload now: finished ones past `keepFinishedMs`, and unfinished ones idle past `idleMs`. */
  expired(now: number, idleMs: number, keepFinishedMs: number): { forgotten: Upload[]; idle: Upload[] } {
    const forgotten: Upload[] = [];
    const idle: Upload[] = [];
    for (const u of [...this.byToken.values()]) {
      if (u.state === 'Succeeded' || u.state === 'Failed') {
        if (now - (u.endedAt ?? now) >= keepFinishedMs) forgotten.push(u);
      } else if (!u.busy && now - u.lastActivity >= idleMs) {
        idle.push(u);
      }
    }
    return { forgotten, idle };
  }

  forget(u: Upload): void {
    this.byToken.delete(u.token);
    if (this.byImage.get(u.start.imageUuid) === u) this.byImage.delete(u.start.imageUuid);
  }

  get size(): number {
    return this.byToken.size;
  }
}
