import { StorageError } from '../../lib/errors.js';
import type { StorageTypeDef } from '../types.js';

/** Placeholder until the sftp driver lands. */
export const sftpType: StorageTypeDef = {
  type: 'SftpBackupStorage',
  create() {
    throw new StorageError('unsupported', 'SftpBackupStorage is not implemented yet');
  },
};
