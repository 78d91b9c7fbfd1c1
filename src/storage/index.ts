import { cephType } from './ceph/index.js';
import { LocalDirectoryDriver } from './local.js';
import { sftpType } from './sftp/index.js';
import type { StorageTypeDef } from './types.js';

export type { DriverContext, StorageTypeDef } from './types.js';

const localType: StorageTypeDef = {
  type: 'LocalBackupStorage',
  create: (ctx) => new LocalDirectoryDriver(ctx.url),
};

/** Every backup-storage type this zimage supports. */
export const STORAGE_TYPES: readonly StorageTypeDef[] = [localType, sftpType, cephType];
