import type { ApiDef } from '../registry.js';

/** Upload (AddImage with upload://, GetUploadImageJobDetails) and export of images. */
export const transferApis: ApiDef[] = [];
