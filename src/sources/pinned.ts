import { promises as dns, type LookupAddress } from 'node:dns';
import type net from 'node:net';

/** Resolves a host name to all its addresses (the system resolver unless a test or caller gives another). */
export type Resolver = (host: string) => Promise<LookupAddress[]>;

/** getaddrinfo, every address, in the resolver's order. Looked up at call time so tests can mock dns.lookup. */
export const systemResolver: Resolver = (host) => dns.lookup(host, { all: true, verbatim: true });

/**
 * A `lookup` for http.request / net.connect that answers with addresses already resolved and checked:
 * the socket connects to exactly those, while Host and TLS SNI keep the name. No second DNS answer can
 * slip in between the check and the connection (DNS rebinding).
 */
export function pinnedLookup(addrs: readonly LookupAddress[]): net.LookupFunction {
  const first = addrs[0];
  if (!first) throw new Error('pinnedLookup needs at least one address');
  const lookup = (
    _host: string,
    options: { all?: boolean },
    cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    if (options.all) cb(null, [...addrs]);
    else cb(null, first.address, first.family);
  };
  return lookup;
}
