import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SecretBox } from './lib/secret-box.js';
import { MAX_TIMER_MS } from './lib/timers.js';
import { buildServer } from './api/server.js';
import { type Config, isLoopback } from './config.js';
import { type DbHandle, openDatabase } from './db/connect.js';
import { type HeldLock, lockDataDir, lockNodeId } from './db/process-lock.js';
import { prepareDataDir } from './lib/data-dir.js';
import { shutdownHashPool } from './hashing/index.js';
import { createLogger } from './observability/logging.js';
import { Metrics } from './observability/metrics.js';
import { createServices, type Services } from './services/index.js';
import { deadAddJudge } from './services/dead-work.js';
import { PeriodicWork } from './services/periodic.js';
import { VERSION } from './version.js';

export interface App {
  config: Config;
  services: Services;
  server: FastifyInstance<any, any, any, any>;
  db: DbHandle;
  /** The address the server listens on, e.g. http://127.0.0.1:8080. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts zimage: database (migrated), admin account, recovery of work a previous process left unfinished,
 * periodic storage pings and job purge, then the HTTP server.
 */
export async function startApp(
  config: Config,
  log: Logger = createLogger(config.logLevel),
  opts: { dataDirLock?: HeldLock } = {},
): Promise<App> {
  // Before anything touches the data directory: it must be usable, and no other live process may own it.
  let dataDirLock = opts.dataDirLock;
  if (!dataDirLock) {
    prepareDataDir(config.dataDir);
    dataDirLock = lockDataDir(config.dataDir);
  }
  const locks: HeldLock[] = [dataDirLock];
  const releaseLocks = async () => {
    for (const l of locks.reverse()) await l.release();
  };
  let db: DbHandle;
  try {
    if (/^postgres(ql)?:\/\//.test(config.db)) {
      locks.push(
        await lockNodeId(config.db, config.nodeId, (err) =>
          log.error({ err: err.message }, 'lost the connection holding the node-id lock'),
        ),
      );
    }
    db = await openDatabase(config.db, log);
  } catch (err) {
    await releaseLocks();
    throw err;
  }
  const singleNode = db.kind === 'sqlite';
  const metrics = new Metrics();
  const services = createServices(db.db, {
    events: metrics,
    nodeId: config.nodeId,
    maxHeavyJobs: config.maxConcurrentHeavyJobs,
    importPolicy: config.importPolicy,
    log,
    secrets: SecretBox.load(config.secretKey, join(config.dataDir, 'secret.key')),
    jobRetentionSec: config.jobRetentionSec,
    leaseMs: config.nodeLeaseSec * 1000,
    loginLimits: {
      maxFailures: config.loginMaxFailures,
      windowSec: config.loginWindowSec,
      backoffSec: config.loginBackoffSec,
      maxBackoffSec: config.loginMaxBackoffSec,
      accountDelayMs: config.loginAccountDelayMs,
      accountMaxDelayMs: config.loginAccountMaxDelayMs,
    },
  });
  try {
    await services.accounts.ensureAdmin(config.adminPassword);
    if (!isLoopback(config.host) && (await services.accounts.adminHasDefaultPassword())) {
      throw new Error(
        `refusing to listen on ${config.host} while the admin password is still the default 'password': ` +
          `set ZIMAGE_ADMIN_PASSWORD=<new password> (or "adminPassword" in the config file) and start again, or bind 127.0.0.1`,
      );
    }
    // Only dead work: this node id's earlier life, dead nodes (PostgreSQL), everything on SQLite (one process).
    const failed = await services.jobs.recoverAtStart();
    const cleaned = await services.imageAdder.cleanupInterrupted(deadAddJudge(db.db, services.nodes, { startUp: true, singleNode }));
    services.uploads.idleTimeoutMs = config.uploadIdleTimeoutSec * 1000;
    await services.uploads.cleanupInterrupted();
    if (failed || cleaned) log.warn({ failedJobs: failed, removedImages: cleaned }, 'recovered work left unfinished by a previous run');
  } catch (err) {
    await db.close();
    await releaseLocks();
    throw err;
  }

  metrics.setSource({
    imagesByStatus: () => services.stats.imagesByStatus(),
    storages: () => services.stats.storages(),
    jobs: () => services.jobs.stats(),
  });
  const server = buildServer(services, config, log, metrics);
  await server.listen({ host: config.host, port: config.port });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  services.lifecycle.defaultPolicy = config.imageDeletionPolicy;
  // Periods beyond a Node timer's range (2^31-1 ms) would fire every millisecond: cap them.
  const period = (seconds: number): number => Math.min(Math.max(seconds, 1) * 1000, MAX_TIMER_MS);
  // Periodic work runs on one node of the cluster at a time (src/services/periodic.ts).
  const periodic = new PeriodicWork(
    db.db,
    config.nodeId,
    config.nodeLeaseSec * 1000,
    [
      {
        name: 'expunger',
        everyMs: period(config.imageExpungeIntervalSec),
        run: () => services.lifecycle.expungeDue(config.imageExpungePeriodSec),
      },
      { name: 'storage ping', everyMs: period(config.pingIntervalSec), run: () => services.backupStorage.pingAll('shared') },
      {
        name: 'job retention',
        everyMs: period(Math.min(3600, config.jobRetentionSec)),
        run: () => services.jobs.purgeFinished(config.jobRetentionSec),
      },
      {
        name: 'interrupted adds of dead nodes',
        everyMs: period(Math.max(config.nodeLeaseSec, 30)),
        run: () =>
          singleNode
            ? Promise.resolve(0)
            : services.imageAdder.cleanupInterrupted(deadAddJudge(db.db, services.nodes, { startUp: false, singleNode })),
      },
    ],
    log,
  );
  // Local-directory storages are pinged by the node whose disk holds them.
  const pingOwned = setInterval(() => void services.backupStorage.pingAll('owned').catch(() => {}), period(config.pingIntervalSec));
  pingOwned.unref();
  services.nodes.onBeat = () => periodic.beat();
  services.nodes.periodicHolder = () => periodic.holder();
  await services.nodes.join(config.publicUrl ?? `http://${host}:${port}`, VERSION);

  let stopped = false;
  return {
    config,
    services,
    server,
    db,
    url: `http://${host}:${port}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      services.readiness.stopping = true;
      await server.close();
      services.uploads.stop();
      clearInterval(pingOwned);
      await services.nodes.leave();
      periodic.stop(true);
      await services.jobs.stopAll();
      await services.backupStorage.closeAll();
      await db.close();
      await releaseLocks();
      await shutdownHashPool();
    },
  };
}
