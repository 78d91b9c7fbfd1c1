import type { Db } from '../db/connect.js';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { DigestResult } from '../hashing/algorithms.js';
import { createHashingTee } from '../hashing/engine.js';
import { ZStackError } from '../lib/errors.js';
import type { BackupStorageDriver, ImportTarget } from '../storage/driver.js';
import { fanOut } from './fan-out.js';
import { IMPORT_DIGESTS } from './image-constants.js';
import type { ImageStore } from './images.js';
import { measureCopy, type MeasuredCopy } from './measure.js';

/** A backup storage an add writes to, as picked when the add started. */
export interface ImportStorage {
  uuid: string;
  name: string;
  /** The storage type (local, sftp, ceph), for metrics. */
  type: string;
  driver: BackupStorageDriver;
  available: number;
}

/** What the stored bytes must agree with: the checksums the system tags expect and the declared format. */
export interface ImportChecks {
  /** Algorithm (MD5, SHA256, ...) → expected hex digest. */
  expected: ReadonlyMap<string, string>;
  declaredFormat?: string;
}

/** The end of one add: where its bytes went and what they hash to. */
export interface ImportResult {
  imageUuid: string;
  targets: readonly ImportStorage[];
  /** One per target, in the same order. */
  imports: readonly ImportTarget[];
  digests: DigestResult;
  checks: ImportChecks;
  /** The caller's error for an image deleted while it was being added. */
  deleted: () => ZStackError;
  /** Checks, inside the transaction that turns the image Ready, that this node still holds the job. */
  fence?: (trx: Db) => Promise<void>;
}

/** The system tags' checksums vs the bytes' digests: any mismatch refuses the image. */
export function checkExpected(expected: ReadonlyMap<string, string>, digests: DigestResult): void {
  for (const [alg, hex] of expected) {
    const got = digests[alg as keyof DigestResult];
    if (got !== undefined && got !== hex) {
      throw new ZStackError(
        'SYS.1006',
        `checksum mismatch: the system tag expects ${alg} ${hex}, but the downloaded bytes have ${alg} ${got}; the image was not added`,
      );
    }
  }
}

/** Declared format vs the bytes: they must agree (raw declared over a qcow2 is refused, as Glance does). */
export function checkFormat(declared: string | undefined, detected: string): void {
  if (declared === undefined || declared === detected) return;
  const hint =
    declared === 'raw'
      ? `the bytes are a ${detected} image; declare format '${detected}' (a ${detected} image is never accepted as raw)`
      : detected === 'raw'
        ? `the bytes carry no ${declared} header; they are raw data. Check the url, or declare format 'raw'`
        : `declare format '${detected}' if this is the image you meant`;
  throw new ZStackError(
    'SYS.1007',
    `declared format[${declared}] does not match the image's content, detected format[${detected}]: ${hint}`,
  );
}

/** The hashing tee that sees every byte of an add (MD5 + SHA-256 in the same pass). */
export const importTee = (opts: Omit<Parameters<typeof createHashingTee>[0], 'algorithms'> = {}) =>
  createHashingTee({ ...opts, algorithms: IMPORT_DIGESTS });

/** Where the tee writes: the one import's stream, or all of them in step. */
export const importSink = (imports: readonly ImportTarget[]): Writable =>
  imports.length === 1 ? imports[0]!.stream : fanOut(imports.map((i) => i.stream));

/**
 * The import step shared by AddImage from a URL and AddImage with upload://: open the storages' import
 * targets; at the end check the digests, commit, measure and check the format of every copy, and turn the
 * image Ready in one transaction (only while it is still Downloading); on failure remove every trace.
 */
export class ImportStep {
  constructor(
    private readonly images: ImageStore,
    private readonly log: Logger,
  ) {}

  /** Opens one import per target, appended to `into` as they open (so a failure part-way rolls back the opened ones). */
  async open(into: ImportTarget[], imageUuid: string, targets: readonly ImportStorage[], expectedSize: number | undefined): Promise<void> {
    for (const t of targets) into.push(await t.driver.createImport(imageUuid, { expectedSize }));
  }

  /** All bytes are in: checks, commit, measure, Ready. Throws the caller's `deleted()` if the image went meanwhile. */
  async complete(r: ImportResult): Promise<void> {
    checkExpected(r.checks.expected, r.digests);
    for (const i of r.imports) await i.commit();
    const measured: MeasuredCopy[] = [];
    for (const [n, t] of r.targets.entries()) {
      const m = await measureCopy(t.driver, r.imports[n]!.installPath, { uuid: t.uuid, name: t.name });
      checkFormat(r.checks.declaredFormat, m.format);
      measured.push(m);
    }
    const first = measured[0]!;
    const ready = await this.images.markReady(
      r.imageUuid,
      {
        size: first.virtualSize,
        actualSize: Math.max(...measured.map((m) => m.actualSize)),
        md5: r.digests.MD5 ?? null,
        format: first.format,
      },
      r.targets.map((t, n) => ({ backupStorageUuid: t.uuid, installPath: r.imports[n]!.installPath })),
      r.digests,
      r.fence,
    );
    // Deleted meanwhile, maybe by another node: nothing is recorded and the caller's rollback removes the bytes.
    if (!ready) throw r.deleted();
  }

  /** Removes every trace of a failed add: partial and committed bytes, refs, tags, digests, the image row. */
  async rollback(imageUuid: string, imports: readonly ImportTarget[], drivers: readonly BackupStorageDriver[]): Promise<void> {
    for (const [n, i] of imports.entries()) {
      await i.abort().catch((err) => this.log.warn({ err, image: imageUuid }, 'cannot remove partial image bytes'));
      await drivers[n]?.delete(i.installPath).catch(() => {});
    }
    await this.images.remove(imageUuid);
  }
}
