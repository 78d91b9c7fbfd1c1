import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { UPLOAD_PATH } from '../services/image-upload.js';
import { isTrustedProxy } from './client-address.js';

/*
 * Slow and greedy clients. Four rules, all in Config (ZIMAGE_* variables, see README):
 *   - headers must arrive within headersTimeoutSec (Node's headersTimeout, answered 408);
 *   - a control-plane request (everything but upload PUTs) must be fully received within requestTimeoutSec;
 *   - any connection that moves no byte either way for idleTimeoutSec is closed. Upload PUTs and export GETs
 *     carry big bodies legitimately, so for them this idle rule is the only one: slow but moving is fine;
 *   - at most maxConnections sockets in all, and maxConnectionsPerClient from one peer address (trusted
 *     proxies are exempt from the per-client cap: every client behind them shares their address).
 */

type GuardConfig = Pick<
  Config,
  'headersTimeoutSec' | 'requestTimeoutSec' | 'idleTimeoutSec' | 'maxConnections' | 'maxConnectionsPerClient' | 'trustedProxies'
>;

/** Options for Fastify(): Node's own timeouts. Node's total-time requestTimeout stays off (uploads may be long). */
export function serverTimeouts(config: GuardConfig) {
  const headersMs = config.headersTimeoutSec * 1000;
  return {
    // Node checks headersTimeout every connectionsCheckingInterval (default 30 s): check often enough to be on time.
    http: { headersTimeout: headersMs, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersMs / 4))) },
    requestTimeout: 0,
    connectionTimeout: config.idleTimeoutSec * 1000,
  };
}

const isDataPlaneBody = (url: string) => url.startsWith(`${UPLOAD_PATH}/`);

/** Installs the connection caps and the control-plane body deadline on a built (not yet listening) server. */
export function guardConnections(app: FastifyInstance<any, any, any, any>, config: GuardConfig, log: Logger): void {
  const server = app.server as Server;
  if (config.maxConnections > 0) server.maxConnections = config.maxConnections;

  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const limit = config.maxConnectionsPerClient;
    if (limit <= 0) return;
    const peer = socket.remoteAddress ?? 'unknown';
    if (isTrustedProxy(peer, config.trustedProxies)) return;
    const open = perClient.get(peer) ?? 0;
    if (open >= limit) {
      log.warn({ client: peer, open }, 'connection refused: too many open connections from this client');
      socket.destroy();
      return;
    }
    perClient.set(peer, open + 1);
    socket.once('close', () => {
      const left = (perClient.get(peer) ?? 1) - 1;
      if (left <= 0) perClient.delete(peer);
      else perClient.set(peer, left);
    });
  });

  const deadlineMs = config.requestTimeoutSec * 1000;
  if (deadlineMs <= 0) return;
  app.addHook('onRequest', (req, reply, done) => {
    const raw = req.raw;
    if (raw.complete || isDataPlaneBody(req.url)) return done();
    const timer = setTimeout(() => {
      if (raw.complete) return;
      log.warn({ reqId: req.id, client: raw.socket.remoteAddress, url: req.url }, 'request body not received in time: connection closed');
      raw.socket.destroy();
    }, deadlineMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    raw.once('end', clear);
    raw.once('close', clear);
    reply.raw.once('finish', clear);
    done();
  });
}
