import { canonicalAddress, parseCidr } from '../sources/index.js';

type Address = NonNullable<ReturnType<typeof canonicalAddress>>;

const inside = (a: Address, cidrs: readonly string[]): boolean =>
  cidrs.some((text) => {
    const cidr = parseCidr(text);
    return cidr.family === a.family && cidr.list.check(a.address, a.family === 4 ? 'ipv4' : 'ipv6');
  });

/**
 * The caller's IP address: the socket peer, unless the peer is one of the trusted proxies (CIDRs); then
 * X-Forwarded-For is read from the right, skipping trusted proxies, and the first other address is the
 * caller. Without trusted proxies the header is ignored, so nobody can pick the address they are counted as.
 */
export function clientAddressOf(peer: string | undefined, forwarded: string | string[] | undefined, trusted: readonly string[]): string {
  const direct = canonicalAddress(peer ?? '');
  if (!direct) return peer ?? 'unknown';
  if (forwarded === undefined || trusted.length === 0 || !inside(direct, trusted)) return direct.address;
  const hops = [forwarded]
    .flat()
    .join(',')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  let client = direct;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = canonicalAddress(hops[i]!);
    if (!hop) break; // not an address: trust stops here
    client = hop;
    if (!inside(hop, trusted)) break;
  }
  return client.address;
}

/** Whether the socket peer is one of the trusted proxies (CIDRs). */
export function isTrustedProxy(peer: string | undefined, trusted: readonly string[]): boolean {
  const direct = canonicalAddress(peer ?? '');
  return direct !== undefined && trusted.length > 0 && inside(direct, trusted);
}
