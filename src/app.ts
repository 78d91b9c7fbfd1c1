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
  const metrics = new Metrics();
  const services = createServices(db.db, {
    events: metrics,
    nodeId: config.nodeId,
    maxHeavyJobs: config.maxConcurrentHeavyJobs,
    importPolicy: config.importPolicy,
    log,
    secrets: SecretBox.load(config.secretKey, join(config.dataDir, 'secret.key')),
    jobRetentionSec: config.jobRetentionSec,
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
    const failed = await services.jobs.failInterrupted();
    const cleaned = await services.imageAdder.cleanupInterrupted();
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
  const expunge = setInterval(
    () => void services.lifecycle.expungeDue(config.imageExpungePeriodSec).catch((err) => log.warn({ err }, 'expunger failed')),
    period(config.imageExpungeIntervalSec),
  );
  expunge.unref();
  const ping = setInterval(() => void services.backupStorage.pingAll().catch(() => {}), period(config.pingIntervalSec));
  const purge = setInterval(
    () => void services.jobs.purgeFinished(config.jobRetentionSec).catch(() => {}),
    period(Math.min(3600, config.jobRetentionSec)),
  );
  ping.unref();
  purge.unref();

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
      clearInterval(ping);
      clearInterval(expunge);
      clearInterval(purge);
      await server.close();
      services.uploads.stop();
      await services.jobs.stopAll();
      await services.backupStorage.closeAll();
      await db.close();
      await releaseLocks();
      await shutdownHashPool();
    },
  };
}
