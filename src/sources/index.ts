import type { Readable } from 'node:stream';
import { ImportSourceError, maskUrl } from './errors.js';
import { openFileSource } from './file.js';
import { openHttpSource } from './http.js';
import type { ImportPolicy } from './import-policy.js';

export { ImportSourceError, maskUrl, type ImportSourceErrorKind } from './errors.js';
export { filePathOf, openFileSource, openVerifiedFile, type VerifiedFile } from './file.js';
export { openHttpSource, type OpenedSource } from './http.js';
export { canonicalAddress, parseCidr } from './cidr.js';
export { checkFilePath } from './file-policy.js';
export { DEFAULT_DENIED_NETWORKS, DEFAULT_IMPORT_POLICY, IMPORT_POLICY_ENV, makeImportPolicy, type ImportPolicy } from './import-policy.js';
export { assertAddressAllowed, assertUrlAllowed, checkAddress, type AddressVerdict } from './network-policy.js';
export { policyFromEnv } from './policy-env.js';

/**
 * Opens the bytes behind an AddImage url: `http://`, `https://` (as the policy allows), `file:///abs/path`
 * or a plain absolute path. Anything else is ImportSourceError('unsupported-scheme' | 'invalid-url').
 * `displayUrl` is the url with credentials masked.
 */
export async function openImportSource(
  url: string,
  policy: ImportPolicy,
  opts: { signal?: AbortSignal } = {},
): Promise<{ stream: Readable; length?: number; displayUrl: string }> {
  if (typeof url !== 'string' || url.trim() === '')
    throw new ImportSourceError('invalid-url', 'the url is empty; give an http(s):// url, a file:/// url or an absolute path.');
  if (url.startsWith('/')) return openFileSource(url, policy, opts);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ImportSourceError(
      'invalid-url',
      `"${maskUrl(url)}" is not a valid url; give an http(s):// url, a file:/// url or an absolute path.`,
    );
  }
  if (parsed.protocol === 'file:') return openFileSource(url, policy, opts);
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return openHttpSource(parsed, policy, opts);
  const scheme = parsed.protocol.replace(/:$/, '');
  throw new ImportSourceError(
    'unsupported-scheme',
    `url ${maskUrl(parsed)} uses the scheme "${scheme}", which zimage does not import from; ` +
      `use ${[...policy.allowedSchemes.map((s) => `${s}://`), 'file:///'].join(', ')} or an absolute path.`,
  );
}
