import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import type { Services } from '../services/index.js';
import { VERSION } from '../version.js';

/*
 * Operator endpoints, at the top level (outside ZStack's /zstack/v1) and without a session:
 *   GET /health   the process is alive: 200 {"status":"ok"}
 *   GET /ready    the node can serve: 200, or 503 with the reason (database, migrations, shutting down)
 *   GET /metrics  Prometheus text; see metricsAccess for who may read it
 */

export type MetricsAccess = 'allowed' | 'unauthorized' | 'forbidden';

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6 (::ffff:127.0.0.1). */
export const isLoopbackAddress = (address: string | undefined): boolean =>
  address !== undefined && (address === '::1' || /^(::ffff:)?127\./i.test(address));

const sameSecret = (a: string, b: string): boolean =>
  timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

/**
 * Who may read /metrics: a client on loopback without a token; any client presenting the configured
 * bearer token (ZIMAGE_METRICS_TOKEN). A token presented must be right, even on loopback. Without a
 * configured token, clients off loopback are refused (403): metrics name storages and their capacity.
 * A request that came through a proxy (Forwarded / X-Forwarded-For) is not local, whatever its peer.
 */
export function metricsAccess(
  remoteAddress: string | undefined,
  authorization: string | undefined,
  token: string | undefined,
  proxied = false,
): MetricsAccess {
  if (authorization !== undefined && authorization !== '') {
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
    return token && presented !== undefined && sameSecret(presented, token) ? 'allowed' : 'unauthorized';
  }
  if (isLoopbackAddress(remoteAddress) && !proxied) return 'allowed';
  return token ? 'unauthorized' : 'forbidden';
}

export function registerOpsRoutes(
  app: FastifyInstance<any, any, any, any>,
  services: Services,
  opts: { metrics?: Metrics; metricsToken?: string },
): void {
  app.get('/health', () => Promise.resolve({ status: 'ok' }));

  app.get('/ready', async (_req, reply) => {
    const r = await services.readiness.check();
    if (r.ready) return reply.code(200).send({ status: 'ready', version: VERSION });
    return reply.code(503).send({ status: 'not ready', reason: r.reason, version: VERSION });
  });

  app.get('/metrics', async (req, reply) => {
    const text = (status: number, message: string) => reply.code(status).type('text/plain; charset=utf-8').send(message);
    const proxied = req.headers.forwarded !== undefined || req.headers['x-forwarded-for'] !== undefined;
    const access = metricsAccess(req.socket.remoteAddress, req.headers.authorization, opts.metricsToken, proxied);
    if (access === 'unauthorized') {
      reply.header('www-authenticate', 'Bearer realm="zimage metrics"');
      return text(401, 'send Authorization: Bearer <token> with the token configured as ZIMAGE_METRICS_TOKEN');
    }
    if (access === 'forbidden') {
      return text(
        403,
        'metrics are served to loopback clients only; set ZIMAGE_METRICS_TOKEN on the server and send it as a bearer token to read them from elsewhere',
      );
    }
    if (!opts.metrics) return text(404, 'metrics are not enabled in this server');
    const { contentType, text: body } = await opts.metrics.render();
    return reply.code(200).type(contentType).send(body);
  });
}
