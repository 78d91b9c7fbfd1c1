import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCidr } from './sources/cidr.js';
import { IMPORT_POLICY_ENV, type ImportPolicy, makeImportPolicy } from './sources/import-policy.js';
import { policyFromEnv } from './sources/policy-env.js';

/** Everything zimage can be told. Precedence: command-line flags, then environment, then config file, then defaults. */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** `sqlite:<path>` (default: <dataDir>/zimage.db) or `postgres://user:pass@host/db`. */
  db: string;
  /** Plain-text initial password of the `admin` account; applied while admin still has the default password. */
  adminPassword?: string;
  /** Base URL put in job locations (default: http://<host>:<port>). */
  publicUrl?: string;
  /** How long an async API may take and still answer 200 with its result on the first response. */
  syncWaitMs: number;
  /** Timeout of a job whose API declares none and whose caller sent no X-API-Timeout. */
  defaultJobTimeoutMs: number;
  /** Heavy jobs (import, hash) running at once; the rest queue. */
  maxConcurrentHeavyJobs: number;
  /** Seconds between backup-storage pings. */
  pingIntervalSec: number;
  /** Finished jobs are kept this long for polling (ZStack: 3 h). */
  jobRetentionSec: number;
  /**
   * Where AddImage may read from: file roots, allowed/denied networks, schemes, ports, timeouts. Set in the
   * config file under "import", or with the ZIMAGE_IMPORT_* variables (see README); env wins.
   */
  importPolicy: ImportPolicy;
  /** DeleteImage's policy: Direct (remove bytes now), Delay (mark Deleted, expunge later), Never (keep bytes). */
  imageDeletionPolicy: 'Direct' | 'Delay' | 'Never';
  /** Seconds a Deleted image is kept before the expunger removes it (ZStack: 259200). */
  imageExpungePeriodSec: number;
  /** Seconds between expunger scans (ZStack: 3600). */
  imageExpungeIntervalSec: number;
  /** Seconds an upload:// image may receive no bytes before it is removed. */
  uploadIdleTimeoutSec: number;
  /** Seconds a client may take to send a request's headers (then 408). */
  headersTimeoutSec: number;
  /** Seconds a control-plane request (all but upload PUTs) may take to arrive in full; then its connection is closed. */
  requestTimeoutSec: number;
  /** Seconds a connection may move no byte either way before it is closed (uploads and exports included). */
  idleTimeoutSec: number;
  /** Open connections in all, and from one client address (trusted proxies exempt); extra ones are closed. 0: no cap. */
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** CIDRs of reverse proxies whose X-Forwarded-For names the client (login throttling counts by client address). */
  trustedProxies: string[];
  /** Failed logins from one address within loginWindowSec before it is refused (per node). */
  loginMaxFailures: number;
  loginWindowSec: number;
  /** First refusal period of an address; doubles at each further failure, up to loginMaxBackoffSec. */
  loginBackoffSec: number;
  loginMaxBackoffSec: number;
  /** Delay per attempt on an account with loginMaxFailures recent failures (any address); doubles, capped. */
  loginAccountDelayMs: number;
  loginAccountMaxDelayMs: number;
  /** Name of this node in job ownership (several nodes may share PostgreSQL); default unique per host and process. */
  nodeId: string;
  /** Seconds without a heartbeat after which a node is dead and its jobs and periodic work are taken over. */
  nodeLeaseSec: number;
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  logLevel: string;
  /** Bearer token clients off loopback must send to read /metrics (without it they are refused). */
  metricsToken?: string;
  /**
   * Base64 of the 32-byte key sealing stored secrets (ZIMAGE_SECRET_KEY only, never a file setting); without it
   * the key file in the data directory, created on first start.
   */
  secretKey?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
function logLevel(v: string): string {
  if (LOG_LEVELS.includes(v)) return v;
  throw new Error(`log level must be one of ${LOG_LEVELS.join(', ')}, got '${v}'`);
}

export const DEFAULT_ADMIN_PASSWORD = 'password';

/** The file's "import" settings, overridden by whichever ZIMAGE_IMPORT_* variables are set. */
function importPolicyOf(fromFile: Partial<ImportPolicy>, env: NodeJS.ProcessEnv): ImportPolicy {
  const fromEnv = policyFromEnv(env);
  const overrides: Record<string, unknown> = { ...fromFile };
  for (const [key, name] of Object.entries(IMPORT_POLICY_ENV)) {
    if (env[name] !== undefined) overrides[key] = fromEnv[key as keyof ImportPolicy];
  }
  return makeImportPolicy(overrides);
}
const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return n;
};

function deletionPolicy(v: string): Config['imageDeletionPolicy'] {
  if (v === 'Direct' || v === 'Delay' || v === 'Never') return v;
  throw new Error(`image deletion policy must be Direct, Delay or Never, got '${v}'`);
}

function cidrList(name: string, v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(/[\s,;]+/).filter(Boolean);
  for (const c of list) {
    try {
      parseCidr(c);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
    }
  }
  return list;
}

const atLeastOne = (name: string, n: number): number => {
  if (!(n >= 1)) throw new Error(`${name} must be at least 1, got ${n}`);
  return n;
};

/** The given node id (checked), else `<host>-<pid>-<random>`: unique per host and process. */
function nodeIdOf(given: string | undefined): string {
  if (given !== undefined) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(given))
      throw new Error(`ZIMAGE_NODE_ID must be 1-64 letters, digits, '.', '_' or '-', got '${given}'`);
    return given;
  }
  const host =
    hostname()
      .replace(/[^A-Za-z0-9.-]/g, '-')
      .slice(0, 40) || 'node';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Reads the configuration from (in order of precedence) `flags`, `env`, the JSON file ZIMAGE_CONFIG / --config. */
export function loadConfig(
  flags: Partial<Omit<Config, 'importPolicy'>> & { config?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const file = flags.config ?? env.ZIMAGE_CONFIG;
  let fromFile: Partial<Config> = {};
  if (file) {
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8')) as Partial<Config>;
    } catch (err) {
      throw new Error(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  const fromEnv: Partial<Config> = definedOnly({
    host: env.ZIMAGE_HOST,
    port: int('ZIMAGE_PORT', env.ZIMAGE_PORT),
    dataDir: env.ZIMAGE_DATA_DIR,
    db: env.ZIMAGE_DB,
    adminPassword: env.ZIMAGE_ADMIN_PASSWORD,
    publicUrl: env.ZIMAGE_PUBLIC_URL,
    syncWaitMs: int('ZIMAGE_SYNC_WAIT_MS', env.ZIMAGE_SYNC_WAIT_MS),
    defaultJobTimeoutMs: int('ZIMAGE_JOB_TIMEOUT_MS', env.ZIMAGE_JOB_TIMEOUT_MS),
    maxConcurrentHeavyJobs: int('ZIMAGE_MAX_HEAVY_JOBS', env.ZIMAGE_MAX_HEAVY_JOBS),
    pingIntervalSec: int('ZIMAGE_PING_INTERVAL_SEC', env.ZIMAGE_PING_INTERVAL_SEC),
    jobRetentionSec: int('ZIMAGE_JOB_RETENTION_SEC', env.ZIMAGE_JOB_RETENTION_SEC),
    imageDeletionPolicy: env.ZIMAGE_IMAGE_DELETION_POLICY as Config['imageDeletionPolicy'] | undefined,
    imageExpungePeriodSec: int('ZIMAGE_IMAGE_EXPUNGE_PERIOD_SEC', env.ZIMAGE_IMAGE_EXPUNGE_PERIOD_SEC),
    imageExpungeIntervalSec: int('ZIMAGE_IMAGE_EXPUNGE_INTERVAL_SEC', env.ZIMAGE_IMAGE_EXPUNGE_INTERVAL_SEC),
    uploadIdleTimeoutSec: int('ZIMAGE_UPLOAD_IDLE_TIMEOUT_SEC', env.ZIMAGE_UPLOAD_IDLE_TIMEOUT_SEC),
    headersTimeoutSec: int('ZIMAGE_HEADERS_TIMEOUT_SEC', env.ZIMAGE_HEADERS_TIMEOUT_SEC),
    requestTimeoutSec: int('ZIMAGE_REQUEST_TIMEOUT_SEC', env.ZIMAGE_REQUEST_TIMEOUT_SEC),
    idleTimeoutSec: int('ZIMAGE_IDLE_TIMEOUT_SEC', env.ZIMAGE_IDLE_TIMEOUT_SEC),
    maxConnections: int('ZIMAGE_MAX_CONNECTIONS', env.ZIMAGE_MAX_CONNECTIONS),
    maxConnectionsPerClient: int('ZIMAGE_MAX_CONNECTIONS_PER_CLIENT', env.ZIMAGE_MAX_CONNECTIONS_PER_CLIENT),
    nodeId: env.ZIMAGE_NODE_ID,
    nodeLeaseSec: int('ZIMAGE_NODE_LEASE_SECONDS', env.ZIMAGE_NODE_LEASE_SECONDS),
    logLevel: env.ZIMAGE_LOG_LEVEL,
    trustedProxies: cidrList('ZIMAGE_TRUSTED_PROXIES', env.ZIMAGE_TRUSTED_PROXIES),
    loginMaxFailures: int('ZIMAGE_LOGIN_MAX_FAILURES', env.ZIMAGE_LOGIN_MAX_FAILURES),
    loginWindowSec: int('ZIMAGE_LOGIN_WINDOW_SEC', env.ZIMAGE_LOGIN_WINDOW_SEC),
    loginBackoffSec: int('ZIMAGE_LOGIN_BACKOFF_SEC', env.ZIMAGE_LOGIN_BACKOFF_SEC),
    loginMaxBackoffSec: int('ZIMAGE_LOGIN_MAX_BACKOFF_SEC', env.ZIMAGE_LOGIN_MAX_BACKOFF_SEC),
    loginAccountDelayMs: int('ZIMAGE_LOGIN_ACCOUNT_DELAY_MS', env.ZIMAGE_LOGIN_ACCOUNT_DELAY_MS),
    loginAccountMaxDelayMs: int('ZIMAGE_LOGIN_ACCOUNT_MAX_DELAY_MS', env.ZIMAGE_LOGIN_ACCOUNT_MAX_DELAY_MS),
    metricsToken: env.ZIMAGE_METRICS_TOKEN,
  });
  const merged = { ...fromFile, ...fromEnv, ...definedOnly(flags) };
  const dataDir = resolve(merged.dataDir ?? './data');
  return {
    host: merged.host ?? '127.0.0.1',
    port: merged.port ?? 8080,
    dataDir,
    db: merged.db ?? `sqlite:${join(dataDir, 'zimage.db')}`,
    adminPassword: merged.adminPassword,
    publicUrl: merged.publicUrl,
    syncWaitMs: merged.syncWaitMs ?? 2000,
    defaultJobTimeoutMs: merged.defaultJobTimeoutMs ?? 30 * 60 * 1000,
    maxConcurrentHeavyJobs: merged.maxConcurrentHeavyJobs ?? availableParallelism(),
    pingIntervalSec: merged.pingIntervalSec ?? 60,
    jobRetentionSec: merged.jobRetentionSec ?? 10800,
    importPolicy: importPolicyOf((fromFile as { import?: Partial<ImportPolicy> }).import ?? {}, env),
    imageDeletionPolicy: deletionPolicy(merged.imageDeletionPolicy ?? 'Delay'),
    imageExpungePeriodSec: merged.imageExpungePeriodSec ?? 259200,
    imageExpungeIntervalSec: merged.imageExpungeIntervalSec ?? 3600,
    uploadIdleTimeoutSec: merged.uploadIdleTimeoutSec ?? 86400,
    headersTimeoutSec: atLeastOne('ZIMAGE_HEADERS_TIMEOUT_SEC', merged.headersTimeoutSec ?? 30),
    requestTimeoutSec: atLeastOne('ZIMAGE_REQUEST_TIMEOUT_SEC', merged.requestTimeoutSec ?? 60),
    idleTimeoutSec: atLeastOne('ZIMAGE_IDLE_TIMEOUT_SEC', merged.idleTimeoutSec ?? 120),
    maxConnections: merged.maxConnections ?? 2048,
    maxConnectionsPerClient: merged.maxConnectionsPerClient ?? 128,
    trustedProxies: merged.trustedProxies === undefined ? [] : cidrList('trustedProxies', [merged.trustedProxies].flat().join(','))!,
    loginMaxFailures: atLeastOne('ZIMAGE_LOGIN_MAX_FAILURES', merged.loginMaxFailures ?? 5),
    loginWindowSec: atLeastOne('ZIMAGE_LOGIN_WINDOW_SEC', merged.loginWindowSec ?? 300),
    loginBackoffSec: merged.loginBackoffSec ?? 60,
    loginMaxBackoffSec: merged.loginMaxBackoffSec ?? 3600,
    loginAccountDelayMs: merged.loginAccountDelayMs ?? 500,
    loginAccountMaxDelayMs: merged.loginAccountMaxDelayMs ?? 10_000,
    nodeId: nodeIdOf(merged.nodeId),
    nodeLeaseSec: atLeastOne('ZIMAGE_NODE_LEASE_SECONDS', merged.nodeLeaseSec ?? 15),
    logLevel: logLevel(merged.logLevel ?? 'info'),
    metricsToken: merged.metricsToken || undefined,
    secretKey: env.ZIMAGE_SECRET_KEY || undefined,
  };
}

export const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');
