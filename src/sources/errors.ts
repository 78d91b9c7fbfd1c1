export type ImportSourceErrorKind =
  'forbidden' | 'not-found' | 'http-status' | 'network' | 'invalid-url' | 'unsupported-scheme' | 'truncated';

/**
 * Why the bytes of an import could not be obtained. The message is meant for the user: it names the
 * (credential-masked) url, says what happened and, when there is something to change, what to change.
 */
export class ImportSourceError extends Error {
  constructor(
    readonly kind: ImportSourceErrorKind,
    message: string,
    /** HTTP status, for 'http-status' and 'not-found' answered by an HTTP server. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ImportSourceError';
  }
}

const SENSITIVE_QUERY = /sig|signature|token|secret|password|passwd|credential|auth|key/i;

/**
 * A url fit for logs and messages: `user:pass@` becomes `***@`, and the values of query parameters that
 * look like secrets (presigned-url signatures, tokens, keys) become `***`. Unparsable input is returned
 * with anything that looks like userinfo masked.
 */
export function maskUrl(url: string | URL): string {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : new URL(url.href);
  } catch {
    return String(url).replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1***@');
  }
  if (u.username || u.password) {
    u.username = '***';
    u.password = '';
  }
  for (const name of [...new Set(u.searchParams.keys())]) {
    if (SENSITIVE_QUERY.test(name)) u.searchParams.set(name, '***');
  }
  return u.href;
}
