import type { ApiDef } from '../registry.js';

/** APIs specific to SftpBackupStorage backup storage. */
export const sftpApis: ApiDef[] = [];
