import { StorageError } from '../../lib/errors.js';

/**
 * A Ceph storage's settings, as stored in its row's config (JSON).
 *
 * Connection: `monUrls` (host or host:port; ZStack's `user:password@host[:port]` reduced to the host part at
 * add time) and `poolName`. With monitors on their default ports and auth none, that is all.
 * cephx (never returned in an inventory): `cephUser` (default "admin") with `cephKey` (the base64 secret),
 * and/or `cephConf` (a ceph.conf path on the zimage host) and `keyring` (a keyring path).
 * `timeoutSeconds`: how long a monitor or OSD may stay silent before an operation fails (default 30).
 */
export interface CephConfig {
  monUrls: string[];
  poolName: string;
  cephUser?: string;
  cephKey?: string;
  cephConf?: string;
  keyring?: string;
  timeoutSeconds?: number;
  /** Learned at connect. */
  fsid?: string;
  mons?: CephMonState[];
  pool?: CephPoolState;
}

/** How a Ceph driver reaches its tools (tests and unusual installs). */
export interface CephDriverOptions {
  /** The `rbd` executable (default: `rbd` from PATH). */
  rbd?: string;
  /** A python3 that has python3-rados/python3-rbd (default /usr/bin/python3, or $ZIMAGE_CEPH_PYTHON). */
  python?: string;
}

export interface CephMonState {
  uuid?: string;
  monAddr: string;
  hostname: string;
  monPort: number;
  status: 'Connected' | 'Disconnected';
}

export interface CephPoolState {
  availableCapacity: number;
  usedCapacity: number;
  replicatedSize: number;
  full?: boolean;
}

export const DEFAULT_TIMEOUT_SECONDS = 30;
/** Ceph's default monitor port for a bare host (msgr v1; a bare host also tries v2 on 3300). */
export const DEFAULT_MON_PORT = 6789;

const POOL_RE = /^[A-Za-z0-9_.-][A-Za-z0-9_.-]{0,127}$/;
const USER_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** A stored setting as text: JSON for objects and arrays, which String() would show as "[object Object]". */
const shown = (v: unknown): string => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$/;

/**
 * The host[:port] part of a monitor url. Accepts ZStack's `user:password@host[:port]` (ssh credentials
 * ZStack used to deploy its agent; zimage does not need them and keeps only the host), `host`, `host:port`,
 * `[v6]:port`. Throws StorageError('invalid') with the offending value otherwise.
 */
export function monHostOf(url: string): string {
  if (typeof url !== 'string') throw new StorageError('invalid', `monitor url ${String(url)} is not a string.`);
  let s = url.trim();
  s = s.replace(/^[a-z]+:\/\//i, '');
  const at = s.lastIndexOf('@');
  if (at >= 0) s = s.slice(at + 1);
  s = s.replace(/\/+$/, '');
  if (!HOST_RE.test(s)) {
    throw new StorageError(
      'invalid',
      `monitor url "${url}" is not host[:port] or user:password@host[:port]; give e.g. "10.0.0.1" or "10.0.0.1:6789".`,
    );
  }
  const port = /:(\d+)$/.exec(s.startsWith('[') ? s.slice(s.indexOf(']')) : s)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    throw new StorageError('invalid', `monitor url "${url}" has port ${port}, outside 1..65535.`);
  }
  return s;
}

/** Host and port of a monitor given as host[:port] (no port: Ceph's default 6789). */
export function splitMonHost(host: string): { hostname: string; port: number; explicitPort: boolean } {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    const rest = host.slice(end + 1);
    return { hostname: host.slice(1, end), port: rest ? Number(rest.slice(1)) : DEFAULT_MON_PORT, explicitPort: !!rest };
  }
  const i = host.lastIndexOf(':');
  if (i < 0) return { hostname: host, port: DEFAULT_MON_PORT, explicitPort: false };
  return { hostname: host.slice(0, i), port: Number(host.slice(i + 1)), explicitPort: true };
}

/** Checks and normalises a config as stored; throws StorageError('invalid') naming the bad setting. */
export function parseCephConfig(raw: Record<string, unknown>): CephConfig {
  const monUrls = raw.monUrls;
  if (!Array.isArray(monUrls) || monUrls.length === 0) {
    throw new StorageError('invalid', 'monUrls must list at least one monitor address, e.g. ["10.0.0.1"].');
  }
  const hosts = monUrls.map((u) => monHostOf(String(u)));
  const poolName = raw.poolName;
  if (typeof poolName !== 'string' || !POOL_RE.test(poolName)) {
    throw new StorageError('invalid', `poolName "${String(poolName)}" is not a valid Ceph pool name (letters, digits, '.', '_', '-').`);
  }
  const cfg: CephConfig = { monUrls: hosts, poolName };
  if (raw.cephUser !== undefined && raw.cephUser !== null && raw.cephUser !== '') {
    const u = shown(raw.cephUser).replace(/^client\./, '');
    if (!USER_RE.test(u))
      throw new StorageError(
        'invalid',
        `cephUser "${shown(raw.cephUser)}" is not a valid Ceph client name, e.g. "zimage" or "client.zimage".`,
      );
    cfg.cephUser = u;
  }
  if (typeof raw.cephKey === 'string' && raw.cephKey !== '') {
    if (!/^[A-Za-z0-9+/=]{16,200}$/.test(raw.cephKey))
      throw new StorageError('invalid', 'cephKey is not a base64 cephx secret (as printed by `ceph auth get-key client.<name>`).');
    cfg.cephKey = raw.cephKey;
  }
  for (const k of ['cephConf', 'keyring'] as const) {
    const v = raw[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0'))
      throw new StorageError('invalid', `${k} must be an absolute path on the zimage host (got "${shown(v)}").`);
    cfg[k] = v;
  }
  if (raw.timeoutSeconds !== undefined && raw.timeoutSeconds !== null) {
    const t = Number(raw.timeoutSeconds);
    if (!Number.isInteger(t) || t < 1 || t > 3600)
      throw new StorageError('invalid', `timeoutSeconds must be an integer between 1 and 3600 (got ${shown(raw.timeoutSeconds)}).`);
    cfg.timeoutSeconds = t;
  }
  if (typeof raw.fsid === 'string') cfg.fsid = raw.fsid;
  if (Array.isArray(raw.mons)) cfg.mons = raw.mons as CephMonState[];
  if (raw.pool && typeof raw.pool === 'object') cfg.pool = raw.pool as CephPoolState;
  return cfg;
}

/** True when credentials were given (then cephx is used; otherwise the client asks for auth none). */
export const hasCredentials = (c: CephConfig): boolean =>
  c.cephKey !== undefined || c.keyring !== undefined || c.cephConf !== undefined || c.cephUser !== undefined;

/**
 * librados settings shared by the `rbd` command and the helper: the monitors, auth, timeouts, and no
 * admin socket or log files on the zimage host. The secret key is not among them (see `secretEnv`).
 */
export function clientSettings(c: CephConfig): Record<string, string> {
  const t = String(c.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS);
  const s: Record<string, string> = {
    mon_host: c.monUrls.join(','),
    client_mount_timeout: t,
    rados_mon_op_timeout: t,
    rados_osd_op_timeout: t,
    admin_socket: '',
    log_file: '',
    log_to_stderr: 'false',
    err_to_stderr: 'true',
  };
  if (!hasCredentials(c)) {
    // A client asking for auth none; naming all three keeps librados from looking for a keyring.
    s.auth_client_required = 'none';
    s.auth_cluster_required = 'none';
    s.auth_service_required = 'none';
  }
  if (c.keyring) s.keyring = c.keyring;
  return s;
}
