import type { ApiDef } from '../registry.js';

/** DeleteImage, ExpungeImage, RecoverImage, ChangeImageState, UpdateImage, SetImageBootMode. */
export const imageLifecycleApis: ApiDef[] = [];
