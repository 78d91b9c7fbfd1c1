import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import { type DigestAlgorithm } from '../hashing/algorithms.js';
import { ZStackError } from '../lib/errors.js';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import type { BackupStorageService } from './backup-storage.js';
import type { ImageStore } from './images.js';
import { HashFlights, type HeavySlots } from './hash-flights.js';
import { CopyProblem, hashCopyDigests, inspectCopy, measureCopy, requireDigest, type MeasuredCopy } from './measure.js';

export interface MeasureContext {
  signal: AbortSignal;
  progress: (done: number, total: number) => void;
  /** The caller's job (CalculateImageHash marks it Running when the shared read starts). */
  jobUuid?: string;
  /** The job's lease check, run inside the transaction that records the digest (services/images.ts recordHash). */
  fence?: (trx: Db) => Promise<void>;
}

/** The job runner as the measurer sees it: heavy slots for shared reads, and the state of waiting jobs. */
export interface MeasureJobs extends HeavySlots {
  markRunning(jobUuid: string): void;
}

/** SyncImageSize and CalculateImageHash: the numbers are always measured on the stored bytes. */
export class ImageMeasurer {
  /** Identical CalculateImageHash calls on this node share one read. */
  readonly flights: HashFlights;

  constructor(
    private readonly images: ImageStore,
    private readonly storages: BackupStorageService,
    private readonly log: Logger,
    private readonly events: ServiceEvents = NO_EVENTS,
    private readonly jobs?: MeasureJobs,
  ) {
    this.flights = new HashFlights(jobs);
  }

  /**
   * SyncImageSize. Unlike ZStack (one arbitrary storage), every Ready (or Error) copy on a Connected
   * storage is measured; copies that disagree on format or virtual size are an error naming them. A copy
   * whose bytes are now unsafe, another format, or missing becomes `Error` (ImageStore.setCopyStatus) and is
   * listed in the reply's `unsafeCopies`; an `Error` copy found sound again becomes Ready. With no sound
   * copy left the call fails, naming them.
   */
  async syncSize(uuid: string, ctx: MeasureContext): Promise<Record<string, unknown>> {
    const image = await this.images.require(uuid);
    const refs = await this.images.refs(uuid);
    if (refs.length === 0) throw new ZStackError('SYS.1006', `the image[uuid:${uuid}, name:${image.name}] is not on any backup storage`);
    // Error copies are measured again too: a restored copy goes back to Ready.
    const measurable = refs.filter((r) => r.status === 'Ready' || r.status === 'Error');
    if (measurable.length === 0) {
      const statuses = refs.map((r) => `${r.status} on backup storage[uuid:${r.backup_storage_uuid}]`).join(', ');
      throw new ZStackError('SYS.1006', `the image[uuid:${uuid}, name:${image.name}] has no Ready copy to measure (${statuses})`);
    }
    const candidates = [];
    for (const ref of measurable) {
      // The status kept fresh by the periodic ping; a storage that vanished since fails the read below with a clear error.
      const row = await this.storages.get(ref.backup_storage_uuid);
      if (row?.status === 'Connected') candidates.push({ ref, row });
    }
    if (candidates.length === 0) {
      throw new ZStackError('SYS.1006', `No connected backup storage found for image[uuid:${uuid}, name:${image.name}]`);
    }
    const measured: Array<MeasuredCopy & { bs: string }> = [];
    const unsafe: Array<{ backupStorageUuid: string; installPath: string; reason: string }> = [];
    let n = 0;
    for (const { ref, row } of candidates) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      let m: MeasuredCopy;
      try {
        m = await measureCopy(this.storages.driver(row), ref.install_path, { uuid: row.uuid, name: row.name }, image.format);
      } catch (err) {
        if (err instanceof CopyProblem && err.kind !== 'unreadable') {
          this.log.warn(
            { ...err.audit, image: uuid, backupStorage: row.uuid, reason: err.details },
            'stored image copy is unsafe or missing; marked Error',
          );
          if (err.audit) this.events.securityEvent(err.audit.event);
          await this.images.setCopyStatus(uuid, row.uuid, 'Error');
          unsafe.push({ backupStorageUuid: row.uuid, installPath: ref.install_path, reason: err.details });
          ctx.progress(++n, candidates.length);
          continue;
        }
        // The storage may have gone away since the last ping: record that now, then answer the read's error.
        await this.storages.reconnect(row.uuid).catch(() => undefined);
        throw err;
      }
      if (ref.status === 'Error') await this.images.setCopyStatus(uuid, row.uuid, 'Ready');
      measured.push({ ...m, bs: `${row.name}(uuid:${row.uuid})` });
      ctx.progress(++n, candidates.length);
    }
    if (measured.length === 0) {
      throw new ZStackError(
        'SYS.1006',
        `no sound copy of image[uuid:${uuid}, name:${image.name}] is left; these copies are now Error: ${unsafe.map((u) => u.reason).join('; ')}. ` +
          'Restore the bytes and run SyncImageSize again, or delete the image',
      );
    }
    const first = measured[0]!;
    const disagree = measured.filter((m) => m.virtualSize !== first.virtualSize || m.format !== first.format);
    if (disagree.length) {
      const list = measured.map((m) => `${m.bs}: ${m.format}, virtual size ${m.virtualSize}`).join('; ');
      throw new ZStackError('SYS.1006', `the copies of image[uuid:${uuid}, name:${image.name}] disagree: ${list}; nothing was updated`);
    }
    await this.images.setSizes(uuid, first.virtualSize, Math.max(...measured.map((m) => m.actualSize)));
    // zimage extension: copies found unsafe or missing (now Error), with the reason.
    return { inventory: await this.images.inventory(uuid), ...(unsafe.length ? { unsafeCopies: unsafe } : {}) };
  }

  /**
   * CalculateImageHash: always reads every byte of the copy on the named storage (never a stored value),
   * puts the hex digest in md5Sum as ZStack does, and records (image, storage, algorithm, digest, time).
   */
  async calculateHash(
    uuid: string,
    backupStorageUuid: string,
    algorithm: DigestAlgorithm,
    ctx: MeasureContext,
  ): Promise<Record<string, unknown>> {
    const image = await this.images.require(uuid);
    await this.storages.require(backupStorageUuid, 'backupStorageUuid');
    const ref = (await this.images.refs(uuid)).find((r) => r.backup_storage_uuid === backupStorageUuid);
    if (!ref) {
      throw new ZStackError('SYS.1006', `image[uuid:${uuid}, name:${image.name}] has no copy on backup storage[uuid:${backupStorageUuid}]`);
    }
    if (ref.status !== 'Ready') {
      throw new ZStackError(
        'SYS.1006',
        `the copy of image[uuid:${uuid}, name:${image.name}] on backup storage[uuid:${backupStorageUuid}] is ${ref.status}, not Ready; only a Ready copy can be hashed`,
      );
    }
    const { row, driver } = await this.storages.usable(backupStorageUuid, false);
    // The bytes may have changed behind zimage's back since they were judged: judge the header again first.
    await inspectCopy(driver, ref.install_path, row, image.format).catch(async (err) => {
      if (err instanceof CopyProblem && err.kind === 'unsafe') {
        await this.images.setCopyStatus(uuid, backupStorageUuid, 'Error');
        const refused = new ZStackError(
          'SYS.1006',
          `${err.details}; the copy is now Error and is not hashed (restore the bytes and run SyncImageSize)`,
        );
        refused.audit = err.audit;
        throw refused;
      }
      // Missing or unreadable: the read below fails with its own clear error.
      if (!(err instanceof CopyProblem)) throw err;
    });
    // A read of this copy already running for this algorithm (or still queued) is joined, not repeated.
    const key = JSON.stringify([backupStorageUuid, uuid, ref.install_path]);
    const caller = {
      algorithm,
      signal: ctx.signal,
      progress: (done: number, total: number) => ctx.progress(done, total),
      running: () => (ctx.jobUuid ? this.jobs?.markRunning(ctx.jobUuid) : undefined),
    };
    const digests = await this.flights.digest(key, caller, async (algorithms, signal, progress) => {
      let hashed = 0;
      const started = performance.now();
      const out = await hashCopyDigests(driver, ref.install_path, row, algorithms, {
        signal,
        progress: (done, total) => {
          hashed = done;
          progress(done, total);
        },
      });
      this.events.bytesHashed(row.type, hashed, (performance.now() - started) / 1000);
      return out;
    });
    const digest = requireDigest(digests, algorithm, row);
    await this.images.recordHash(uuid, backupStorageUuid, algorithm, digest, ctx.fence);
    const others = (await this.images.digests.forImage(uuid)).filter(
      (d) => d.algorithm === algorithm && d.backup_storage_uuid !== backupStorageUuid && d.digest !== digest,
    );
    if (others.length) this.log.warn({ image: uuid, algorithm, others }, 'copies of an image have different digests');
    const inventory = await this.images.inventory(uuid);
    // Callers of one shared read for other algorithms record their digests at the same moment: the reply
    // shows this caller's own.
    inventory.md5Sum = digest;
    return {
      success: true,
      inventory,
      // zimage extension: copies of the same image on other storages whose recorded digest differs.
      ...(others.length
        ? {
            digestConflicts: others.map((d) => ({
              backupStorageUuid: d.backup_storage_uuid,
              algorithm: d.algorithm,
              digest: d.digest,
              source: d.source,
            })),
          }
        : {}),
    };
  }
}
