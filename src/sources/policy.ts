import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ImportSourceError } from './errors.js';

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

const NETWORK_LABELS: Record<string, string> = {
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

// ---------------------------------------------------------------------------------------------------------
// Addresses and CIDRs

interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly list: net.BlockList;
}

const cidrCache = new Map<string, Cidr>();

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128). Throws a plain Error when invalid. */
export function parseCidr(text: string): Cidr {
  const cached = cidrCache.get(text);
  if (cached) return cached;
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addr = stripBrackets(slash < 0 ? trimmed : trimmed.slice(0, slash));
  const family = net.isIP(addr);
  if (family !== 4 && family !== 6) throw new Error(`"${text}" is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : trimmed.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new Error(`"${text}" has an invalid prefix length (0..${max})`);
  const list = new net.BlockList();
  list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  const cidr: Cidr = { text: `${addr}/${prefix}`, family, list };
  cidrCache.set(text, cidr);
  return cidr;
}

const stripBrackets = (s: string): string => (s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s);

/** The 16 bytes of an IPv6 address (zone id ignored), or undefined. */
function ipv6Bytes(address: string): number[] | undefined {
  let a = address.split('%')[0] ?? '';
  if (net.isIPv6(a) === false) return undefined;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4?.[1]) {
    for (const p of v4[1].split('.')) tail.push(Number(p));
    a = a.slice(0, -v4[1].length) + '0:0';
  }
  const [head, rest] = a.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes.length === 16 ? bytes : undefined;
}

/**
 * The address to judge: brackets and zone ids removed, IPv4-mapped IPv6 (`::ffff:a.b.c.d`, in any
 * spelling) turned into the IPv4 address it reaches. Undefined if it is not an IP address.
 */
export function canonicalAddress(address: string): { address: string; family: 4 | 6 } | undefined {
  const a = stripBrackets(address.trim());
  if (net.isIPv4(a)) return { address: a, family: 4 };
  const bytes = ipv6Bytes(a);
  if (!bytes) return undefined;
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { address: bytes.slice(12).join('.'), family: 4 };
  }
  return { address: a.split('%')[0] ?? a, family: 6 };
}

function cidrContains(cidr: Cidr, addr: { address: string; family: 4 | 6 }): boolean {
  return cidr.list.check(addr.address, addr.family === 4 ? 'ipv4' : 'ipv6');
}

export type AddressVerdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'denied'; readonly network: string; readonly label?: string }
  | { readonly allowed: false; readonly reason: 'not-allowed' }
  | { readonly allowed: false; readonly reason: 'not-an-address' };

/** Judges one IP address against the policy's networks (deny list first, then the allow list if any). */
export function checkAddress(address: string, policy: ImportPolicy): AddressVerdict {
  const addr = canonicalAddress(address);
  if (!addr) return { allowed: false, reason: 'not-an-address' };
  for (const text of policy.deniedNetworks) {
    const cidr = parseCidr(text);
    if (cidrContains(cidr, addr)) {
      const label = NETWORK_LABELS[cidr.text];
      return label
        ? { allowed: false, reason: 'denied', network: cidr.text, label }
        : { allowed: false, reason: 'denied', network: cidr.text };
    }
  }
  if (policy.allowedNetworks.length > 0 && !policy.allowedNetworks.some((t) => cidrContains(parseCidr(t), addr))) {
    return { allowed: false, reason: 'not-allowed' };
  }
  return { allowed: true };
}

/**
 * Throws ImportSourceError('forbidden') unless `address` (what `displayUrl` resolved to) may be connected to.
 */
export function assertAddressAllowed(address: string, displayUrl: string, policy: ImportPolicy): void {
  const v = checkAddress(address, policy);
  if (v.allowed) return;
  const shown = canonicalAddress(address)?.address ?? address;
  const resolves = shown === stripBrackets(address) ? `resolves to ${shown}` : `resolves to ${address} (${shown})`;
  switch (v.reason) {
    case 'denied':
      throw new ImportSourceError(
        'forbidden',
        `url ${displayUrl} ${resolves}, which is in the denied network ${v.network}${v.label ? ` (${v.label})` : ''}; ` +
          `importing from it is refused. If this server is a trusted image source, remove ${v.network} from ` +
          `${IMPORT_POLICY_ENV.deniedNetworks}.`,
      );
    case 'not-allowed':
      throw new ImportSourceError(
        'forbidden',
        `url ${displayUrl} ${resolves}, which is outside the allowed networks (${policy.allowedNetworks.join(', ')}); ` +
          `importing from it is refused. To allow it, add its network to ${IMPORT_POLICY_ENV.allowedNetworks}.`,
      );
    case 'not-an-address':
      throw new ImportSourceError('network', `url ${displayUrl} resolved to "${address}", which is not an IP address.`);
  }
}

/**
 * Checks the parts of a network url that need no DNS: scheme and port. Throws ImportSourceError
 * ('unsupported-scheme' or 'forbidden').
 */
export function assertUrlAllowed(url: URL, displayUrl: string, policy: ImportPolicy): void {
  const scheme = url.protocol.replace(/:$/, '');
  if (!policy.allowedSchemes.includes(scheme)) {
    throw new ImportSourceError(
      'unsupported-scheme',
      `url ${displayUrl} uses the scheme "${scheme}", which zimage does not import from; ` +
        `use ${[...policy.allowedSchemes.map((s) => `${s}://`), 'file:///'].join(', ')} or an absolute path` +
        (['http', 'https'].includes(scheme) ? ` (or add "${scheme}" to ${IMPORT_POLICY_ENV.allowedSchemes})` : '') +
        '.',
    );
  }
  const port = url.port ? Number(url.port) : scheme === 'https' ? 443 : 80;
  if (policy.deniedPorts.includes(port)) {
    throw new ImportSourceError(
      'forbidden',
      `url ${displayUrl} uses port ${port}, which is in ${IMPORT_POLICY_ENV.deniedPorts}; importing from it is refused.`,
    );
  }
  if (policy.allowedPorts.length > 0 && !policy.allowedPorts.includes(port)) {
    throw new ImportSourceError(
      'forbidden',
      `url ${displayUrl} uses port ${port}, which is not among the allowed ports (${policy.allowedPorts.join(', ')}); ` +
        `add it to ${IMPORT_POLICY_ENV.allowedPorts} to allow it.`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Local files

const isInside = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);

async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    try {
      out.push(await fsp.realpath(path.resolve(r)));
    } catch {
      // A root that does not exist cannot contain anything.
    }
  }
  return out;
}

const rootsHint = (policy: ImportPolicy): string =>
  policy.fileRoots.length
    ? `allowed directories are ${policy.fileRoots.join(', ')}; move the image there or add its directory to ${IMPORT_POLICY_ENV.fileRoots}`
    : `importing local files is disabled; set ${IMPORT_POLICY_ENV.fileRoots} to the directories images may be read from`;

/** Hidden segments count below the root only: a root may itself live in a dot-directory. */
const hiddenBelow = (p: string, rootList: readonly string[]): boolean => {
  const r = rootList.find((root) => isInside(p, root) && p !== root);
  return (
    r !== undefined &&
    path
      .relative(r, p)
      .split(path.sep)
      .some((seg) => seg.startsWith('.'))
  );
};

/**
 * The checks that need no file system: `filePath` is absolute, its normalised form lies inside an allowed
 * root and (when fileDenyHidden) has no hidden segment. Returns the normalised path. Throws
 * ImportSourceError ('invalid-url', 'forbidden').
 */
export function checkRequestedPath(filePath: string, policy: ImportPolicy): string {
  if (filePath.includes('\0')) throw new ImportSourceError('invalid-url', 'file path contains a NUL byte.');
  if (!path.isAbsolute(filePath)) {
    throw new ImportSourceError('invalid-url', `file path "${filePath}" is not absolute; give a path starting with "/".`);
  }
  const normalised = path.resolve(filePath);
  const roots = policy.fileRoots.map((r) => path.resolve(r));
  if (!roots.some((r) => isInside(normalised, r) && normalised !== r)) {
    const shown = normalised === filePath ? filePath : `${filePath} (that is, ${normalised})`;
    throw new ImportSourceError('forbidden', `file ${shown} is outside the directories zimage may import from (${rootsHint(policy)}).`);
  }
  if (policy.fileDenyHidden && hiddenBelow(normalised, roots)) {
    throw new ImportSourceError(
      'forbidden',
      `file ${normalised} is inside a hidden directory or is a hidden file; importing it is refused (rename it, or set ${IMPORT_POLICY_ENV.fileDenyHidden}=false).`,
    );
  }
  return normalised;
}

/**
 * Judges where `normalised` really is (`real`: symbolic links resolved, e.g. read from an open descriptor):
 * it must lie inside the real path of an allowed root and (when fileDenyHidden) have no hidden segment.
 * Throws ImportSourceError('forbidden').
 */
export async function checkRealPath(normalised: string, real: string, policy: ImportPolicy): Promise<void> {
  const realAllowed = await realRoots(policy.fileRoots);
  if (!realAllowed.some((r) => isInside(real, r) && real !== r)) {
    throw new ImportSourceError(
      'forbidden',
      `file ${normalised} resolves (through a symbolic link) to ${real}, which is outside the directories zimage may import from (${rootsHint(policy)}).`,
    );
  }
  if (policy.fileDenyHidden && hiddenBelow(real, realAllowed)) {
    throw new ImportSourceError('forbidden', `file ${normalised} resolves to ${real}, a hidden path; importing it is refused.`);
  }
}

/** ImportSourceError for a failed realpath/open of `normalised`. */
export function fileAccessError(err: unknown, normalised: string): ImportSourceError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new ImportSourceError('not-found', `file ${normalised} does not exist; check the url.`);
  if (code === 'EACCES' || code === 'EPERM') {
    return new ImportSourceError('forbidden', `file ${normalised} cannot be read by zimage (permission denied); fix its permissions.`);
  }
  if (code === 'ELOOP') return new ImportSourceError('forbidden', `file ${normalised} is a symbolic link loop.`);
  return new ImportSourceError('not-found', `file ${normalised} cannot be resolved (${code ?? 'error'}).`);
}

/** Refuses anything but a regular file, naming what it is. */
export function assertRegularFile(
  st: { isFile(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean },
  normalised: string,
): void {
  if (st.isFile()) return;
  const what = st.isDirectory() ? 'a directory' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
  throw new ImportSourceError('forbidden', `file ${normalised} is ${what}; only regular files can be imported.`);
}

/**
 * Accepts `filePath` only if it is absolute, its normalised form AND its real path (symlinks resolved)
 * lie inside an allowed root, no segment is hidden (when fileDenyHidden), and it is a regular file.
 * Returns the real path and the size. Throws ImportSourceError ('invalid-url', 'forbidden', 'not-found').
 * A verdict by path only: to read the file, use openFileSource, which judges the opened descriptor.
 */
export async function checkFilePath(filePath: string, policy: ImportPolicy): Promise<{ path: string; size: number }> {
  const normalised = checkRequestedPath(filePath, policy);
  let real: string;
  try {
    real = await fsp.realpath(normalised);
  } catch (err) {
    throw fileAccessError(err, normalised);
  }
  await checkRealPath(normalised, real, policy);
  const st = await fsp.stat(real).catch((err: NodeJS.ErrnoException) => {
    throw new ImportSourceError('not-found', `file ${normalised} cannot be read (${err.code ?? 'error'}).`);
  });
  assertRegularFile(st, normalised);
  return { path: real, size: st.size };
}

// ---------------------------------------------------------------------------------------------------------
// Construction

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

/**
 * A policy from environment-style settings ({@link IMPORT_POLICY_ENV} names; lists separated by commas or
 * whitespace; an empty value means an empty list). Unset names keep their defaults. Pure: pass the map.
 */
export function policyFromEnv(env: Readonly<Record<string, string | undefined>>): ImportPolicy {
  const list = (k: keyof typeof IMPORT_POLICY_ENV): string[] | undefined => {
    const v = env[IMPORT_POLICY_ENV[k]];
    return v === undefined ? undefined : v.split(/[\s,;]+/).filter(Boolean);
  };
  const num = (k: keyof typeof IMPORT_POLICY_ENV): number | undefined => {
    const v = env[IMPORT_POLICY_ENV[k]];
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${IMPORT_POLICY_ENV[k]}="${v}" is not a number`);
    return n;
  };
  const o: { -readonly [K in keyof ImportPolicy]?: ImportPolicy[K] } = {};
  const ports = (k: 'allowedPorts' | 'deniedPorts'): number[] | undefined =>
    list(k)?.map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n)) throw new Error(`${IMPORT_POLICY_ENV[k]}: "${s}" is not a port number`);
      return n;
    });
  o.fileRoots = list('fileRoots');
  o.allowedSchemes = list('allowedSchemes');
  o.allowedNetworks = list('allowedNetworks');
  o.deniedNetworks = list('deniedNetworks');
  o.allowedPorts = ports('allowedPorts');
  o.deniedPorts = ports('deniedPorts');
  o.connectTimeoutMs = num('connectTimeoutMs');
  o.idleTimeoutMs = num('idleTimeoutMs');
  o.maxRedirects = num('maxRedirects');
  const hiddenText = env[IMPORT_POLICY_ENV.fileDenyHidden]?.trim().toLowerCase();
  if (hiddenText) o.fileDenyHidden = !['0', 'false', 'no', 'off'].includes(hiddenText);
  const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<ImportPolicy>;
  for (const c of [...(defined.allowedNetworks ?? []), ...(defined.deniedNetworks ?? [])]) {
    try {
      parseCidr(c);
    } catch (err) {
      throw new Error(
        `${defined.allowedNetworks?.includes(c) ? IMPORT_POLICY_ENV.allowedNetworks : IMPORT_POLICY_ENV.deniedNetworks}: ${(err as Error).message}`,
      );
    }
  }
  return makeImportPolicy(defined);
}
