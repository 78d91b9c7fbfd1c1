import { StorageError } from '../../lib/errors.js';
import type { StorageTypeDef } from '../types.js';

/** Placeholder until the ceph driver lands. */
export const cephType: StorageTypeDef = {
  type: 'Ceph',
  create() {
    throw new StorageError('unsupported', 'Ceph is not implemented yet');
  },
};
