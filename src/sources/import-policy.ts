/**
 * What an AddImage url may point at, its defaults and its validated construction. The checks that apply it
 * live in network-policy.ts (http/https urls) and file-policy.ts (local files); policy-env.ts reads it from env.
 */
import path from 'node:path';
import { parseCidr } from './cidr.js';

/**
 * What an AddImage url may point at. Pure data: build it with {@link makeImportPolicy} (or
 * {@link policyFromEnv}) so that every CIDR is validated once, up front.
 */
export interface ImportPolicy {
  /** Local directories a `file://` url may read from. Empty: file imports are disabled. */
  readonly fileRoots: readonly string[];
  /** Refuse file paths with a segment starting with '.' (e.g. `/root/.ssh/id_rsa`), as ZStack's blacklist does. */
  readonly fileDenyHidden: boolean;
  /** Network schemes, without ':' (`http`, `https`). */
  readonly allowedSchemes: readonly string[];
  /** CIDRs; when non-empty, every address a url resolves to must be inside one of them. */
  readonly allowedNetworks: readonly string[];
  /** CIDRs no import may connect to; checked before allowedNetworks and wins over it. */
  readonly deniedNetworks: readonly string[];
  /** When non-empty, the only ports a url may use. */
  readonly allowedPorts: readonly number[];
  readonly deniedPorts: readonly number[];
  /** Time allowed to establish the TCP connection. */
  readonly connectTimeoutMs: number;
  /** Time allowed without any byte from the server (waiting for headers or body). */
  readonly idleTimeoutMs: number;
  readonly maxRedirects: number;
}

/** Names of the settings, as they appear in messages and in {@link policyFromEnv}. */
export const IMPORT_POLICY_ENV = {
  fileRoots: 'ZIMAGE_IMPORT_FILE_ROOTS',
  fileDenyHidden: 'ZIMAGE_IMPORT_FILE_DENY_HIDDEN',
  allowedSchemes: 'ZIMAGE_IMPORT_ALLOWED_SCHEMES',
  allowedNetworks: 'ZIMAGE_IMPORT_ALLOWED_NETWORKS',
  deniedNetworks: 'ZIMAGE_IMPORT_DENIED_NETWORKS',
  allowedPorts: 'ZIMAGE_IMPORT_ALLOWED_PORTS',
  deniedPorts: 'ZIMAGE_IMPORT_DENIED_PORTS',
  connectTimeoutMs: 'ZIMAGE_IMPORT_CONNECT_TIMEOUT_MS',
  idleTimeoutMs: 'ZIMAGE_IMPORT_IDLE_TIMEOUT_MS',
  maxRedirects: 'ZIMAGE_IMPORT_MAX_REDIRECTS',
} as const satisfies Record<keyof ImportPolicy, string>;

/** Link-local and cloud metadata endpoints, and "this host" addresses. Loopback and private ranges stay allowed. */
export const DEFAULT_DENIED_NETWORKS: readonly string[] = [
  '169.254.0.0/16',
  'fe80::/10',
  '100.100.100.200/32',
  'fd00:ec2::254/128',
  '0.0.0.0/8',
  '::/128',
];

/** Why each default denied network is denied, shown in refusals. */
export const NETWORK_LABELS: Record<string, string> = {
  '169.254.0.0/16': 'link-local/metadata',
  'fe80::/10': 'IPv6 link-local',
  '100.100.100.200/32': 'Alibaba Cloud metadata',
  'fd00:ec2::254/128': 'AWS IPv6 metadata',
  '0.0.0.0/8': '"this host", reaches local services',
  '::/128': 'unspecified address, reaches local services',
};

export const DEFAULT_IMPORT_POLICY: ImportPolicy = Object.freeze({
  fileRoots: Object.freeze(['/home', '/mnt', '/opt', '/root', '/srv']),
  fileDenyHidden: true,
  allowedSchemes: Object.freeze(['http', 'https']),
  allowedNetworks: Object.freeze([]),
  deniedNetworks: DEFAULT_DENIED_NETWORKS,
  allowedPorts: Object.freeze([]),
  deniedPorts: Object.freeze([]),
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  maxRedirects: 5,
});

/** The default policy with `overrides` applied; every CIDR, port and timeout is validated (plain Error if not). */
export function makeImportPolicy(overrides: Partial<ImportPolicy> = {}): ImportPolicy {
  const p: ImportPolicy = { ...DEFAULT_IMPORT_POLICY, ...overrides };
  for (const c of [...p.allowedNetworks, ...p.deniedNetworks]) parseCidr(c);
  for (const port of [...p.allowedPorts, ...p.deniedPorts]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port} (1..65535)`);
  }
  for (const r of p.fileRoots) if (!path.isAbsolute(r)) throw new Error(`file import root "${r}" is not an absolute path`);
  for (const k of ['connectTimeoutMs', 'idleTimeoutMs'] as const) {
    if (!(p[k] > 0)) throw new Error(`${k} must be a positive number of milliseconds`);
  }
  if (!Number.isInteger(p.maxRedirects) || p.maxRedirects < 0) throw new Error('maxRedirects must be a non-negative integer');
  return Object.freeze({
    ...p,
    fileRoots: Object.freeze([...p.fileRoots]),
    allowedSchemes: Object.freeze(p.allowedSchemes.map((s) => s.toLowerCase().replace(/:$/, ''))),
    allowedNetworks: Object.freeze([...p.allowedNetworks]),
    deniedNetworks: Object.freeze([...p.deniedNetworks]),
    allowedPorts: Object.freeze([...p.allowedPorts]),
    deniedPorts: Object.freeze([...p.deniedPorts]),
  });
}
