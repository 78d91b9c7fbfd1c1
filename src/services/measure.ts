import { inspect, InspectError } from '../formats/inspect.js';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';
import { isAbortError, StorageError, ZStackError } from '../lib/errors.js';
import type { BackupStorageDriver } from '../storage/driver.js';

export interface MeasuredCopy {
  /** The image's format as recorded in ImageInventory.format. */
  format: string;
  virtualSize: number;
  /** Allocated bytes on the storage (qemu-img's actual-size). */
  actualSize: number;
}

/** Inspector formats that qemu treats as raw disks. */
const AS_RAW = new Set(['raw', 'gpt', 'mbr']);

/**
 * A stored copy that cannot be used as it is: its bytes are an unsafe image (or no longer the format the
 * image was recorded with), it is missing, or it cannot be read right now. Still a SYS.1006 ZStackError.
 */
export class CopyProblem extends ZStackError {
  constructor(
    readonly kind: 'unsafe' | 'missing' | 'unreadable',
    details: string,
  ) {
    super('SYS.1006', details);
  }
}

export interface InspectedCopy {
  format: string;
  virtualSize: number;
  /** The stored bytes' length. */
  fileSize: number;
}

/**
 * Inspects one stored copy's header through the driver (kilobytes, not the image). Throws CopyProblem
 * when it is unsafe, missing or unreadable; with `expectedFormat`, a copy whose bytes are now another
 * format is unsafe too (zimage never converts, so the format of a copy never changes by itself).
 */
export async function inspectCopy(
  driver: BackupStorageDriver,
  installPath: string,
  bs: { uuid: string; name: string },
  expectedFormat?: string,
): Promise<InspectedCopy> {
  const where = `image copy ${installPath} on backup storage[uuid:${bs.uuid}, name:${bs.name}]`;
  const storageProblem = (err: StorageError) =>
    new CopyProblem(
      err.kind === 'not-found' ? 'missing' : err.kind === 'invalid' ? 'unsafe' : 'unreadable',
      `cannot read ${where}: ${err.message}`,
    );
  let source;
  try {
    source = await driver.open(installPath);
  } catch (err) {
    if (err instanceof StorageError) throw storageProblem(err);
    throw err;
  }
  try {
    const result = await inspect(source);
    if (!result.safety.ok) {
      const why = result.safety.failures.map((f) => `${f.check}: ${f.message}`).join('; ');
      throw new CopyProblem('unsafe', `${where} is refused as unsafe (${result.format}): ${why}`).withAudit('image.unsafe', {
        format: result.format,
        checks: result.safety.failures.map((f) => f.check),
        backupStorage: bs.uuid,
        installPath,
      });
    }
    const format = AS_RAW.has(result.format) ? 'raw' : result.format;
    if (expectedFormat !== undefined && format !== expectedFormat) {
      throw new CopyProblem(
        'unsafe',
        `${where} is refused as unsafe: its bytes are now ${format}, but the image was recorded as ${expectedFormat}; they were changed outside zimage`,
      ).withAudit('image.unsafe', { format, expectedFormat, backupStorage: bs.uuid, installPath });
    }
    return { format, virtualSize: result.virtualSize, fileSize: await source.size() };
  } catch (err) {
    if (err instanceof InspectError) {
      throw new CopyProblem(err.code === 'READ_FAILED' ? 'unreadable' : 'unsafe', `cannot inspect ${where}: ${(err as Error).message}`);
    }
    if (err instanceof StorageError) throw storageProblem(err);
    throw err;
  } finally {
    await source.close().catch(() => {});
  }
}

/**
 * Measures one stored copy: {@link inspectCopy}, then asks the storage for the allocated bytes. Errors are
 * ZStackErrors naming the copy (CopyProblem for the copy itself).
 */
export async function measureCopy(
  driver: BackupStorageDriver,
  installPath: string,
  bs: { uuid: string; name: string },
  expectedFormat?: string,
): Promise<MeasuredCopy> {
  const inspected = await inspectCopy(driver, installPath, bs, expectedFormat);
  try {
    const actualSize = await driver.allocatedSize(installPath);
    return { format: inspected.format, virtualSize: inspected.virtualSize, actualSize };
  } catch (err) {
    if (err instanceof StorageError) {
      throw new CopyProblem(
        err.kind === 'not-found' ? 'missing' : 'unreadable',
        `cannot read image copy ${installPath} on backup storage[uuid:${bs.uuid}, name:${bs.name}]: ${err.message}`,
      );
    }
    throw err;
  }
}

/**
 * Reads every byte of one stored copy and digests it near the data (the driver decides where). Storage
 * failures become a ZStack error naming the copy; cancel and timeout stop the read.
 */
export async function hashCopy(
  driver: BackupStorageDriver,
  installPath: string,
  bs: { uuid: string; name: string },
  algorithm: DigestAlgorithm,
  ctx: { signal: AbortSignal; progress: (done: number, total: number) => void },
): Promise<string> {
  return requireDigest(await hashCopyDigests(driver, installPath, bs, [algorithm], ctx), algorithm, bs);
}

/** hashCopy for several algorithms in one read. */
export async function hashCopyDigests(
  driver: BackupStorageDriver,
  installPath: string,
  bs: { uuid: string; name: string },
  algorithms: readonly DigestAlgorithm[],
  ctx: { signal: AbortSignal; progress: (done: number, total: number) => void },
): Promise<DigestResult> {
  let digests: DigestResult;
  try {
    digests = await driver.hash(installPath, algorithms, { signal: ctx.signal, onProgress: ctx.progress });
  } catch (err) {
    if (isAbortError(err) || err instanceof ZStackError) throw err;
    if (err instanceof StorageError) {
      throw new ZStackError(
        'SYS.1006',
        `cannot hash image copy ${installPath} on backup storage[uuid:${bs.uuid}, name:${bs.name}]: ${err.message}`,
      );
    }
    throw err;
  }
  if (ctx.signal.aborted) throw ctx.signal.reason;
  return digests;
}

/** The digest of `algorithm` among `digests`, or a ZStack error naming the storage that gave none. */
export function requireDigest(digests: DigestResult, algorithm: DigestAlgorithm, bs: { uuid: string }): string {
  const digest = digests[algorithm];
  if (!digest) throw new ZStackError('SYS.1000', `backup storage[uuid:${bs.uuid}] returned no ${algorithm} digest`);
  return digest;
}
