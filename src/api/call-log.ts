import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZStackError } from '../lib/errors.js';
import type { Metrics } from '../observability/metrics.js';

/** What the dispatcher learns about a call, for its log line and metrics. */
export interface CallInfo {
  api?: string;
  job?: string;
  resource?: string;
  /** The caller's account uuid, once the session is known. */
  account?: string;
  /** A sync API's failure (its audit, if any, is logged here; a job's is logged by the job runner). */
  error?: ZStackError;
  /** The ZStack code of an async API that already failed when the call was answered (202). */
  code?: string;
  /** A 4xx answered by the REST layer. */
  rejected?: string;
  /** The client address (X-Forwarded-For from trusted proxies, else the socket peer). */
  client?: string;
  /** An access-key signature refused as a wrong credential (unknown key, bad signature): a failed login. */
  accessKeyRefused?: string;
}

const calls = new WeakMap<FastifyRequest, CallInfo>();

/** The call's record, created on first use; the dispatcher fills it in as it goes. */
export function callInfo(req: FastifyRequest): CallInfo {
  let info = calls.get(req);
  if (!info) calls.set(req, (info = {}));
  return info;
}

/** A request id given by a proxy is kept when it is short and plain; otherwise one is made. */
export function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomBytes(6).toString('hex');
}

const loginName = (body: unknown): string | undefined => {
  const name = (body as { logInByAccount?: { accountName?: unknown } } | undefined)?.logInByAccount?.accountName;
  return typeof name === 'string' ? name.slice(0, 128) : undefined;
};

/**
 * One line per API call (request id, API, account, resource, job, status, ZStack code, duration, client
 * address) and its metrics; security events of sync calls (failed logins with the client address). Other
 * requests (job polling, byte routes, health) get a debug line naming their route pattern, never their
 * URL: upload and export URLs carry tokens.
 */
export function registerCallLog(app: FastifyInstance<any, any, any, any>, metrics?: Metrics): void {
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    const info = calls.get(req);
    const durationMs = Math.round(reply.elapsedTime * 10) / 10;
    const status = reply.statusCode;
    if (!info?.api) {
      req.log.debug({ method: req.method, route: req.routeOptions.url ?? '(no route)', status, durationMs, client: req.ip }, 'request');
      return;
    }
    const { api } = info;
    const code = info.error?.code ?? info.code;
    const outcome = status === 202 ? 'accepted' : status < 300 ? 'succeeded' : code ? 'failed' : 'rejected';
    const account = info.account ?? (api === 'LogInByAccount' ? loginName(req.body) : undefined);
    const details = info.error?.details ?? info.rejected;
    const client = info.client ?? req.ip;
    const line = {
      api,
      account,
      resource: info.resource,
      job: info.job,
      status,
      code,
      durationMs,
      client,
      ...(details ? { details } : {}),
    };
    if (status >= 500 && !code) req.log.error(line, 'api call');
    else req.log.info(line, 'api call');
    metrics?.apiCall(api, outcome, code, reply.elapsedTime / 1000);

    if (api === 'LogInByAccount' && code !== undefined) {
      req.log.warn({ event: 'login.failed', account, client, code }, 'security event');
      metrics?.loginFailed();
      metrics?.securityEvent('login.failed');
    }
    if (info.accessKeyRefused) {
      metrics?.loginFailed();
      metrics?.securityEvent('accesskey.failed');
    }
    const audit = info.error?.audit;
    if (audit) {
      req.log.warn({ ...audit, api, account, client }, 'security event');
      metrics?.securityEvent(audit.event);
    }
  });
}
