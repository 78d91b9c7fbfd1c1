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
 * Measures one stored copy: reads its header through the driver (kilobytes, not the image), refuses an
 * unsafe or unreadable image, and asks the storage for the allocated bytes.
 */
export async function measureCopy(driver: BackupStorageDriver, installPath: string, bs: { uuid: string; name: string }): Promise<MeasuredCopy> {
  const where = `image copy ${installPath} on backup storage[uuid:${bs.uuid}, name:${bs.name}]`;
  let source;
  try {
    source = await driver.open(installPath);
  } catch (err) {
    if (err instanceof StorageError) throw new ZStackError('SYS.1006', `cannot read ${where}: ${err.message}`);
    throw err;
  }
  try {
    const result = await inspect(source);
    if (!result.safety.ok) {
      const why = result.safety.failures.map((f) => `${f.check}: ${f.message}`).join('; ');
      throw new ZStackError('SYS.1006', `${where} is refused as unsafe (${result.format}): ${why}`).withAudit('image.unsafe', {
        format: result.format,
        checks: result.safety.failures.map((f) => f.check),
        backupStorage: bs.uuid,
        installPath,
      });
    }
    const actualSize = await driver.allocatedSize(installPath);
    return { format: AS_RAW.has(result.format) ? 'raw' : result.format, virtualSize: result.virtualSize, actualSize };
  } catch (err) {
    if (err instanceof InspectError) throw new ZStackError('SYS.1006', `cannot inspect ${where}: ${(err as Error).message}`);
    if (err instanceof StorageError) throw new ZStackError('SYS.1006', `cannot read ${where}: ${err.message}`);
    throw err;
  } finally {
    await source.close().catch(() => {});
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
  ctx: { signal: AbortSignal; progress(done: number, total: number): void },
): Promise<string> {
  return requireDigest(await hashCopyDigests(driver, installPath, bs, [algorithm], ctx), algorithm, bs);
}

/** hashCopy for several algorithms in one read. */
export async function hashCopyDigests(
  driver: BackupStorageDriver,
  installPath: string,
  bs: { uuid: string; name: string },
  algorithms: readonly DigestAlgorithm[],
  ctx: { signal: AbortSignal; progress(done: number, total: number): void },
): Promise<DigestResult> {
  let digests: DigestResult;
  try {
    digests = await driver.hash(installPath, algorithms, { signal: ctx.signal, onProgress: ctx.progress });
  } catch (err) {
    if (isAbortError(err) || err instanceof ZStackError) throw err;
    if (err instanceof StorageError) {
      throw new ZStackError('SYS.1006', `cannot hash image copy ${installPath} on backup storage[uuid:${bs.uuid}, name:${bs.name}]: ${err.message}`);
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
