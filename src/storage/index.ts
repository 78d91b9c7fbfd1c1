import { cephType } from './ceph/index.js';
import { LocalDirectoryDriver } from './local/driver.js';
import { sftpType } from './sftp/index.js';
import type { StorageTypeDef } from './types.js';
import { INVENTORY_CLASS } from '../lib/inventory-class.js';

export type { DriverContext, StorageInventoryBase, StorageTypeDef } from './types.js';

const localType: StorageTypeDef = {
  type: 'LocalBackupStorage',
  // A zimage-only type: the SDKs know it as the base class.
  inventoryClass: INVENTORY_CLASS.backupStorage,
  create: (ctx) => new LocalDirectoryDriver(ctx.url),
};

/** Every backup-storage type this zimage supports. */
export const STORAGE_TYPES: readonly StorageTypeDef[] = [localType, sftpType, cephType];
