import type { FastifyRequest } from 'fastify';
import type { SessionTable } from '../db/schema.js';
import { RestError } from './rest-error.js';
import { AccessKeyRefused, checkRequestTime } from '../services/access-keys.js';
import type { Services } from '../services/index.js';
import { callInfo } from './call-log.js';

/** `Authorization: ZStack <AccessKeyId>:<signature>` (RestConstants.HEADER_ACCESSKEY). */
const SCHEME = 'ZStack';
/** ZStack's servlet context path: the signature covers what follows it (`/v1/...`). */
const CONTEXT_PATH = '/zstack';

/** The HTTP status ZStack's RestServer and AccessKeyManager answer for each refusal (plain text bodies). */
const STATUS: Record<AccessKeyRefused['reason'], number> = {
  'no-date': 400,
  'bad-date': 400,
  skewed: 403,
  'unknown-key': 403,
  'bad-signature': 403,
};

export const isAccessKeyAuthorization = (req: FastifyRequest): boolean => (req.headers.authorization ?? '').trim().startsWith(SCHEME);

/**
 * Authenticates a request signed with an access key, or returns undefined when the request carries another
 * kind of Authorization. A refused signature stores and runs nothing: it answers 400/403 as ZStack does.
 */
export async function accessKeySession(req: FastifyRequest, services: Services, clientAddress: string): Promise<SessionTable | undefined> {
  if (!isAccessKeyAuthorization(req)) return undefined;
  // Signatures are guessed like passwords: the login throttle's refusal of an address covers them too.
  const retryAfter = services.accounts.refusedFor(clientAddress);
  if (retryAfter > 0) throw new RestError(403, `too many failed authentication attempts; retry after ${retryAfter} s`);
  const date = req.headers.date;
  // The signed path is the request URI below the context path (/zstack), decoded, without the query string.
  const path = decodeURIComponent(req.url.split('?')[0] ?? req.url);
  const uri = path.startsWith(`${CONTEXT_PATH}/`) ? path.slice(CONTEXT_PATH.length) : path;
  try {
    // RestServer's order: the Date first, then the shape of the credential, then the key and signature.
    checkRequestTime(date);
    const credential = (req.headers.authorization ?? '').trim().slice(SCHEME.length).trim();
    const parts = javaSplit(credential, ':');
    if (parts.length !== 2) throw new RestError(400, "accessKey format is 'ZStack AccessKeyId:Signature'");
    const session = await services.accessKeys.verify({ accessKeyId: parts[0]!, signature: parts[1]!, date, method: req.method, uri });
    req.log.info(
      { event: 'accesskey.used', accessKeyId: parts[0], account: session.account_uuid, client: clientAddress },
      'security event',
    );
    return session;
  } catch (err) {
    if (err instanceof AccessKeyRefused) {
      if (err.reason === 'unknown-key' || err.reason === 'bad-signature') {
        const id = (req.headers.authorization ?? '').trim().slice(SCHEME.length).trim().split(':')[0] ?? '';
        services.accounts.accessKeyFailed(id, clientAddress, err.reason);
        callInfo(req).accessKeyRefused = err.reason;
      }
      throw new RestError(STATUS[err.reason], err.message);
    }
    throw err;
  }
}

/** Java's String.split: trailing empty strings are dropped ("id:" is one part). */
function javaSplit(s: string, sep: string): string[] {
  const parts = s.split(sep);
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}
