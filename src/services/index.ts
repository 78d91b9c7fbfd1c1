import type { Logger } from 'pino';
import type { Db } from '../db/connect.js';
import type { SecretBox } from '../lib/secret-box.js';
import { RefusedJobs } from '../jobs/refused.js';
import { NO_EVENTS, type ServiceEvents } from '../observability/events.js';
import { JobRunner } from '../jobs/runner.js';
import type { ImportPolicy } from '../sources/index.js';
import { AccessKeyService } from './access-keys.js';
import { AccountService } from './accounts.js';
import { LoginThrottle, type LoginThrottleLimits } from './login-throttle.js';
import { BackupStorageService } from './backup-storage.js';
import type { DigestStore } from './digests.js';
import { ImageAdder } from './image-add.js';
import { ImageExportService } from './image-export.js';
import { ImportStep } from './image-import.js';
import { ImageUploadService } from './image-upload.js';
import { ImageLifecycle } from './image-lifecycle.js';
import { ImageMeasurer } from './image-measure.js';
import { ImageStore } from './images.js';
import { InventoryStats } from './inventory-stats.js';
import { NodeMembership } from './nodes.js';
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
  /** upload:// adds (begun by imageAdder). */
  uploads: ImageUploadService;
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
  /** Cluster membership: heartbeat, node list (src/services/nodes.ts). */
  nodes: NodeMembership;
}

export function createServices(
  db: Db,
  opts: {
    nodeId: string;
    maxHeavyJobs: number;
    importPolicy: ImportPolicy;
    log: Logger;
    secrets: SecretBox;
    events?: ServiceEvents;
    jobRetentionSec?: number;
    loginLimits?: LoginThrottleLimits;
    /** Node lease: a node silent this long is dead (default 15 s). */
    leaseMs?: number;
  },
): Services {
  const backupStorage = new BackupStorageService(db, opts.log, opts.secrets);
  const images = new ImageStore(db);
  const events = opts.events ?? NO_EVENTS;
  const importStep = new ImportStep(images, opts.log);
  const uploads = new ImageUploadService(images, backupStorage, importStep, opts.log, events, opts.nodeId);
  const jobs = new JobRunner(
    db,
    opts.nodeId,
    opts.maxHeavyJobs,
    opts.log,
    { policy: opts.importPolicy },
    new RefusedJobs(opts.secrets.deriveKey('api-job-ids'), (opts.jobRetentionSec ?? 10800) * 1000),
    events,
    opts.secrets,
    opts.leaseMs,
  );
  // Several nodes share only PostgreSQL: there, a local-directory storage belongs to the node that added it.
  if (jobs.leases.postgres) backupStorage.nodeId = opts.nodeId;
  return {
    accounts: new AccountService(db, opts.log, new LoginThrottle(opts.loginLimits)),
    accessKeys: new AccessKeyService(db, opts.secrets),
    backupStorage,
    images,
    imageAdder: new ImageAdder(images, backupStorage, importStep, uploads, () => opts.importPolicy, opts.log, events),
    uploads,
    imageExport: new ImageExportService(images, backupStorage, opts.log),
    measurer: new ImageMeasurer(images, backupStorage, opts.log, events, jobs),
    lifecycle: new ImageLifecycle(images, backupStorage, opts.log),
    digests: images.digests,
    jobs,
    tags: new TagStore(db),
    readiness: new ReadinessCheck(db),
    stats: new InventoryStats(db),
    events,
    zones: new ZoneService(db),
    nodes: new NodeMembership(db, opts.nodeId, opts.leaseMs ?? 15_000, jobs, opts.log),
  };
}
