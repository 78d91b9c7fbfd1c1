import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServiceEvents } from './events.js';

/** Read at scrape time (never kept up to date in between): cheap queries and in-memory counts. */
export interface ScrapeSource {
  imagesByStatus(): Promise<Array<{ status: string; count: number }>>;
  storages(): Promise<
    Array<{ uuid: string; name: string; type: string; status: string; totalCapacity: number; availableCapacity: number }>
  >;
  jobs(): { live: Array<{ api: string; state: string }>; heavyRunning: number; heavyQueued: number; heavyLimit: number };
}

/** How an API call ended, as the per-call metric's `outcome` label. */
export type CallOutcome = 'succeeded' | 'accepted' | 'failed' | 'rejected';

const MiB = 1024 * 1024;

/**
 * zimage's Prometheus metrics, in a registry of its own (several servers in one process stay apart).
 * Services feed it through ServiceEvents; the API layer through apiCall/loginFailed; gauges of the
 * database and the job runner are read from a ScrapeSource when /metrics is scraped.
 */
export class Metrics implements ServiceEvents {
  readonly registry = new Registry();
  private source?: ScrapeSource;

  private readonly apiCalls = new Counter({
    name: 'zimage_api_calls_total',
    help: 'API calls by API name, outcome (succeeded, accepted = 202 job, failed = ZStack error, rejected = 4xx) and ZStack error code',
    labelNames: ['api', 'outcome', 'code'] as const,
    registers: [this.registry],
  });
  private readonly apiLatency = new Histogram({
    name: 'zimage_api_call_duration_seconds',
    help: 'Time to answer an API call (for async APIs: until the 200 or the 202)',
    labelNames: ['api'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly jobsStarted = new Counter({
    name: 'zimage_jobs_started_total',
    help: 'Jobs that started running, by API',
    labelNames: ['api'] as const,
    registers: [this.registry],
  });
  private readonly jobsFinished = new Counter({
    name: 'zimage_jobs_finished_total',
    help: 'Jobs that ended, by API and final state',
    labelNames: ['api', 'state'] as const,
    registers: [this.registry],
  });
  private readonly jobDuration = new Histogram({
    name: 'zimage_job_duration_seconds',
    help: 'Running time of finished jobs (queueing excluded), by API',
    labelNames: ['api'] as const,
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800],
    registers: [this.registry],
  });
  private readonly bytesImportedTotal = new Counter({
    name: 'zimage_bytes_imported_total',
    help: 'Image bytes written by imports (URL and upload), by storage type',
    labelNames: ['storage_type'] as const,
    registers: [this.registry],
  });
  private readonly bytesHashedTotal = new Counter({
    name: 'zimage_bytes_hashed_total',
    help: 'Image bytes read by CalculateImageHash, by storage type',
    labelNames: ['storage_type'] as const,
    registers: [this.registry],
  });
  private readonly bytesExportedTotal = new Counter({
    name: 'zimage_bytes_exported_total',
    help: 'Exported image bytes sent to clients, by storage type',
    labelNames: ['storage_type'] as const,
    registers: [this.registry],
  });
  private readonly hashThroughput = new Histogram({
    name: 'zimage_hash_throughput_bytes_per_second',
    help: 'Throughput of each CalculateImageHash, by storage type',
    labelNames: ['storage_type'] as const,
    buckets: [16, 64, 128, 256, 512, 768, 1024, 2048, 4096].map((n) => n * MiB),
    registers: [this.registry],
  });
  private readonly loginFailures = new Counter({
    name: 'zimage_login_failures_total',
    help: 'Failed LogInByAccount calls and refused access-key signatures (unknown key, wrong signature)',
    registers: [this.registry],
  });
  private readonly securityEvents = new Counter({
    name: 'zimage_security_events_total',
    help: 'Security events logged, by event (login.failed, import.refused, image.unsafe, …)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // collect() runs with `this` bound to its gauge: these reach the registry's state.
    const source = () => this.source;
    const storageSnapshot = () => this.storageSnapshot();
    new Gauge({
      name: 'zimage_jobs',
      help: 'Jobs of this node not yet finished, by API and state (Queued, Running)',
      labelNames: ['api', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const j of source()?.jobs().live ?? []) this.inc({ api: j.api, state: j.state });
      },
    });
    new Gauge({
      name: 'zimage_heavy_jobs',
      help: 'Heavy jobs (imports, hashes) of this node running and queued, and the limit',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const jobs = source()?.jobs();
        if (!jobs) return;
        this.set({ state: 'running' }, jobs.heavyRunning);
        this.set({ state: 'queued' }, jobs.heavyQueued);
        this.set({ state: 'limit' }, jobs.heavyLimit);
      },
    });
    new Gauge({
      name: 'zimage_images',
      help: 'Images by status (from the database)',
      labelNames: ['status'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const src = source();
        if (!src) return;
        // The usual statuses are always present, so a dashboard sees 0 rather than no series.
        for (const status of ['Ready', 'Downloading']) this.set({ status }, 0);
        for (const row of await src.imagesByStatus().catch(() => [])) this.set({ status: row.status }, row.count);
      },
    });
    const storageLabels = ['uuid', 'name', 'type'] as const;
    new Gauge({
      name: 'zimage_backup_storage_status',
      help: 'Backup storage status: 1 for its current status (Connected, Disconnected, Connecting)',
      labelNames: [...storageLabels, 'status'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const s of await storageSnapshot()) this.set({ uuid: s.uuid, name: s.name, type: s.type, status: s.status }, 1);
      },
    });
    new Gauge({
      name: 'zimage_backup_storage_capacity_bytes',
      help: 'Backup storage capacity as last measured, kind total or available',
      labelNames: [...storageLabels, 'kind'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const s of await storageSnapshot()) {
          this.set({ uuid: s.uuid, name: s.name, type: s.type, kind: 'total' }, s.totalCapacity);
          this.set({ uuid: s.uuid, name: s.name, type: s.type, kind: 'available' }, s.availableCapacity);
        }
      },
    });
  }

  private snapshot?: { at: number; rows: ReturnType<ScrapeSource['storages']> };
  /** One storage query serves both storage gauges of a scrape (they are collected concurrently). */
  private storageSnapshot(): ReturnType<ScrapeSource['storages']> {
    const now = Date.now();
    if (!this.snapshot || now - this.snapshot.at > 1000) {
      this.snapshot = { at: now, rows: this.source?.storages().catch(() => []) ?? Promise.resolve([]) };
    }
    return this.snapshot.rows;
  }

  /** Where the scrape-time gauges read from (set once the services exist). */
  setSource(source: ScrapeSource): void {
    this.source = source;
  }

  apiCall(api: string, outcome: CallOutcome, code: string | undefined, seconds: number): void {
    this.apiCalls.inc({ api, outcome, code: code ?? '' });
    this.apiLatency.observe({ api }, seconds);
  }

  loginFailed(): void {
    this.loginFailures.inc();
  }

  bytesImported(storageType: string, bytes: number): void {
    this.bytesImportedTotal.inc({ storage_type: storageType }, bytes);
  }

  bytesHashed(storageType: string, bytes: number, seconds: number): void {
    this.bytesHashedTotal.inc({ storage_type: storageType }, bytes);
    if (seconds > 0 && bytes > 0) this.hashThroughput.observe({ storage_type: storageType }, bytes / seconds);
  }

  bytesExported(storageType: string, bytes: number): void {
    this.bytesExportedTotal.inc({ storage_type: storageType }, bytes);
  }

  jobStarted(api: string): void {
    this.jobsStarted.inc({ api });
  }

  jobFinished(api: string, state: 'Succeeded' | 'Failed', seconds: number): void {
    this.jobsFinished.inc({ api, state });
    this.jobDuration.observe({ api }, seconds);
  }

  securityEvent(event: string): void {
    this.securityEvents.inc({ event });
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
