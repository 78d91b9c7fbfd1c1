import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { SecretBox } from '../lib/secret-box.js';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import { JobRunner } from '../jobs/runner.js';
import { checkAddress, type ImportPolicy } from '../sources/index.js';
import { lookup } from 'node:dns/promises';
import { AccessKeyService } from './access-keys.js';
import { AccountService } from './accounts.js';
import { BackupStorageService } from './backup-storage.js';
import { DigestStore } from './digests.js';
import { ImageAdder } from './image-add.js';
import { ImageExportService } from './image-export.js';
import type { ImageUploadService } from './image-upload.js';
import { ImageLifecycle } from './image-lifecycle.js';
import { ImageMeasurer } from './image-measure.js';
import { ImageStore } from './images.js';
import { InventoryStats } from './inventory-stats.js';
import { ReadinessCheck } from './readiness.js';
import { TagStore } from './tags.js';
import { ZoneService } from './zones.js';

/** Everything the API layer may call. */
export interface Services {
  accounts: AccountService;
  accessKeys: AccessKeyService;
  backupStorage: BackupStorageService;
  images: ImageStore;
  imageAdder: ImageAdder;
  /** upload:// adds (owned by imageAdder). */
  readonly uploads: ImageUploadService;
  imageExport: ImageExportService;
  measurer: ImageMeasurer;
  lifecycle: ImageLifecycle;
  digests: DigestStore;
  jobs: JobRunner;
  tags: TagStore;
  readiness: ReadinessCheck;
  stats: InventoryStats;
  /** Where services report for metrics (the API layer reports exported bytes through it too). */
  events: ServiceEvents;
  zones: ZoneService;
}

export function createServices(
  db: Db,
  opts: { nodeId: string; maxHeavyJobs: number; importPolicy: ImportPolicy; log: Logger; secrets: SecretBox; events?: ServiceEvents },
): Services {
  const backupStorage = new BackupStorageService(db, opts.log, opts.secrets);
  const images = new ImageStore(db);
  const events = opts.events ?? NO_EVENTS;
  const jobs = new JobRunner(db, opts.nodeId, opts.maxHeavyJobs, opts.log, webHookGuard(opts.importPolicy), events);
  return {
    accounts: new AccountService(db),
    accessKeys: new AccessKeyService(db, opts.secrets),
    backupStorage,
    images,
    imageAdder: new ImageAdder(images, backupStorage, () => opts.importPolicy, opts.log, events),
    get uploads() {
      return this.imageAdder.uploads;
    },
    imageExport: new ImageExportService(images, backupStorage, opts.log),
    measurer: new ImageMeasurer(images, backupStorage, opts.log, events, jobs),
    lifecycle: new ImageLifecycle(images, backupStorage, opts.log),
    digests: new DigestStore(db),
    jobs,
    tags: new TagStore(db),
    readiness: new ReadinessCheck(db),
    stats: new InventoryStats(db),
    events,
    zones: new ZoneService(db),
  };
}

/**
 * Web hooks are requests the server makes to a caller-chosen URL: they get the import policy's denied
 * networks (link-local, cloud metadata, …), so a hook cannot be aimed at them.
 */
function webHookGuard(policy: ImportPolicy) {
  const denyOnly = { ...policy, allowedNetworks: [] };
  return async (url: URL): Promise<void> => {
    const addresses = await lookup(url.hostname.replace(/^\[|\]$/g, ''), { all: true });
    for (const { address } of addresses) {
      const verdict = checkAddress(address, denyOnly);
      if (!verdict.allowed && verdict.reason === 'denied') {
        const err = new Error(`web hook ${url.origin} resolves to ${address}, in the denied network ${verdict.network}; not called`);
        err.name = 'WebHookRefused';
        throw err;
      }
    }
  };
}
