import type { Logger } from 'pino';
import type { BackupStorageService } from './backup-storage.js';
import type { ImageStore } from './images.js';

/** Delete (Direct / Delay / Never), expunge, recover, state, update and boot mode of images. */
export class ImageLifecycle {
  constructor(
    readonly images: ImageStore,
    readonly storages: BackupStorageService,
    readonly log: Logger,
  ) {}
}
