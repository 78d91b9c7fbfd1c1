import type { StorageTypeDef } from '../types.js';
import type { CephMonState, CephPoolState } from './config.js';
import { CephDriver } from './driver.js';

export { CephDriver } from './driver.js';
export { monHostOf, parseCephConfig, type CephConfig } from './config.js';

/**
 * ZStack's "Ceph" backup storage: images as RBD images in one pool. Inventory extras (never the cephx key,
 * user, ceph.conf or keyring): fsid, mons (with status), poolName, poolAvailableCapacity, poolUsedCapacity,
 * poolReplicatedSize — as learned at the last connect.
 */
export const cephType: StorageTypeDef = {
  type: 'Ceph',
  create: (ctx) => new CephDriver(ctx),
  inventoryFields(config) {
    const pool = config.pool as CephPoolState | undefined;
    const mons = (Array.isArray(config.mons) ? (config.mons as CephMonState[]) : []).map((m) => ({
      ...(m.uuid ? { uuid: m.uuid } : {}),
      hostname: m.hostname,
      monPort: m.monPort,
      monAddr: m.monAddr,
      status: m.status,
    }));
    return {
      ...(typeof config.fsid === 'string' ? { fsid: config.fsid } : {}),
      mons,
      poolName: config.poolName,
      ...(pool
        ? {
            poolAvailableCapacity: pool.availableCapacity,
            poolUsedCapacity: pool.usedCapacity,
            poolReplicatedSize: pool.replicatedSize,
          }
        : {}),
    };
  },
};
