/**
 * Address and CIDR maths for the import policy: parsing CIDRs, canonical addresses (IPv4-mapped IPv6 turned
 * into the IPv4 address it reaches) and membership. No policy here.
 */
import net from 'node:net';

export interface Cidr {
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

export const stripBrackets = (s: string): string => (s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s);

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

export function cidrContains(cidr: Cidr, addr: { address: string; family: 4 | 6 }): boolean {
  return cidr.list.check(addr.address, addr.family === 4 ? 'ipv4' : 'ipv6');
}
