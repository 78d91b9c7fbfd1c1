import { inspect, InspectError } from '../formats/inspect.js';
import { StorageError, ZStackError } from '../lib/errors.js';
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
      throw new ZStackError('SYS.1006', `${where} is refused as unsafe (${result.format}): ${why}`);
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
