import type { ApiDef } from '../registry.js';

/** APIs specific to Ceph backup storage. */
export const cephApis: ApiDef[] = [];
