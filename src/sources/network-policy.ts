/** The network half of the import policy: which schemes, ports and resolved addresses an http(s) url may use. */
import { canonicalAddress, cidrContains, parseCidr, stripBrackets } from './cidr.js';
import { ImportSourceError } from './errors.js';
import { IMPORT_POLICY_ENV, type ImportPolicy, NETWORK_LABELS } from './import-policy.js';

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
