import { INVENTORY_CLASS, withClass } from '../../lib/inventory-class.js';
import type { StorageTypeDef } from '../types.js';
import type { CephMonState, CephPoolState } from './config.js';
import { CephDriver } from './driver.js';

export { CephDriver } from './driver.js';
export { monHostOf, parseCephConfig, type CephConfig } from './config.js';

/**
 * ZStack's "Ceph" backup storage: images as RBD images in one pool. CephBackupStorageInventory's own fields
 * as learned at the last connect (never the cephx key, user, ceph.conf or keyring): fsid, poolName, the pool's
 * numbers, and mons as CephBackupStorageMonInventory. zimage reaches the cluster through librados, not over
 * SSH to each monitor, so a mon has no sshUsername, sshPassword or sshPort; its dates are the storage's
 * (monitors are added with it). zimage writes RBD images into replicated pools only: poolSecurityPolicy is
 * "Copy" and poolDiskUtilization the share of raw space that holds data, 1/replicas (0.33 for three).
 */
export const cephType: StorageTypeDef = {
  type: 'Ceph',
  inventoryClass: INVENTORY_CLASS.cephBackupStorage,
  create: (ctx) => new CephDriver(ctx),
  inventoryFields(config, storage) {
    const pool = config.pool as CephPoolState | undefined;
    const mons = (Array.isArray(config.mons) ? (config.mons as CephMonState[]) : []).map((m) =>
      withClass(INVENTORY_CLASS.cephBackupStorageMon, {
        hostname: m.hostname,
        monPort: m.monPort,
        createDate: storage.createDate,
        lastOpDate: storage.lastOpDate,
        backupStorageUuid: storage.uuid,
        monAddr: m.monAddr,
        status: m.status,
        ...(m.uuid ? { monUuid: m.uuid } : {}),
      }),
    );
    return {
      mons,
      ...(typeof config.fsid === 'string' ? { fsid: config.fsid } : {}),
      poolName: config.poolName,
      ...(pool
        ? {
            poolAvailableCapacity: pool.availableCapacity,
            poolUsedCapacity: pool.usedCapacity,
            poolReplicatedSize: pool.replicatedSize,
            ...(pool.replicatedSize > 0 ? { poolDiskUtilization: Math.round(100 / pool.replicatedSize) / 100 } : {}),
            poolSecurityPolicy: 'Copy',
          }
        : {}),
    };
  },
};
