import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Refusal, ZStackError } from '../lib/errors.js';
import { REFUSAL_STATUS } from './http-status.js';
import { RestError } from './rest-error.js';
import type { Metrics } from '../observability/metrics.js';
import type { Services } from '../services/index.js';
import { callInfo, registerCallLog, requestId } from './call-log.js';
import { guardConnections, serverTimeouts } from './connection-guard.js';
import { API_PREFIX, registerApis } from './dispatcher.js';
import { openApiDocument } from './openapi.js';
import { registerOpsRoutes } from './ops.js';
import type { ApiDef } from './registry.js';
import { accessKeyApis } from './routes/access-keys.js';
import { accountApis } from './routes/accounts.js';
import { backupStorageApis } from './routes/backup-storage.js';
import { imageLifecycleApis } from './routes/image-lifecycle.js';
import { imageApis } from './routes/images.js';
import { tagApis } from './routes/tags.js';
import { transferApis } from './routes/transfer.js';
import { zoneApis } from './routes/zones.js';
import { registerDataPlane } from './data-plane.js';
import { makeRedoer } from './job-redo.js';
import { registerDocsPage } from './docs-page.js';
import { cephApis } from './routes/ceph.js';
import { jobApis } from './routes/jobs.js';
import { nodeApis } from './routes/nodes.js';
import { sftpApis } from './routes/sftp.js';

/** Every API zimage serves, declared once. */
export const ALL_APIS: readonly ApiDef[] = [
  ...accountApis,
  ...backupStorageApis,
  ...sftpApis,
  ...cephApis,
  ...imageApis,
  ...imageLifecycleApis,
  ...transferApis,
  ...jobApis,
  ...nodeApis,
  ...accessKeyApis,
  ...tagApis,
  ...zoneApis,
];

/** Builds the HTTP server: ZStack's conventions (plain-text REST errors, 202 + api-jobs, 503 ErrorCode). */
export function buildServer(services: Services, config: Config, log: Logger, metrics?: Metrics): FastifyInstance<any, any, any, any> {
  const app = Fastify({
    loggerInstance: log,
    bodyLimit: 1024 * 1024,
    ...serverTimeouts(config),
    genReqId: requestId,
    // Fastify's own request lines are off: call-log.ts writes one line per API call with its context.
    logController: new LogController({ disableRequestLogging: true }),
  });
  registerCallLog(app, metrics);
  guardConnections(app, config, log);

  // Any content type is read as JSON (ZStack's clients send application/json;charset=UTF-8, curl users often nothing).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body).trim();
    if (text === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new RestError(400, `the request body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((error, req, reply) => {
    const err = error as Error;
    if (err instanceof RestError || err instanceof Refusal) {
      callInfo(req).rejected = err.message;
      reply
        .code(err instanceof RestError ? err.statusCode : REFUSAL_STATUS[err.kind])
        .type('text/plain; charset=utf-8')
        .send(err.message);
      return;
    }
    if (err instanceof ZStackError) {
      reply.code(503).send({ error: err.toBody() });
      return;
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      reply.code(status).type('text/plain; charset=utf-8').send(err.message);
      return;
    }
    req.log.error({ err }, 'unexpected error');
    reply.code(500).type('text/plain; charset=utf-8').send(`internal error: ${err.message}`);
  });

  app.setNotFoundHandler((req, reply) => {
    reply
      .code(404)
      .type('text/plain; charset=utf-8')
      .send(`no api mapping to ${decodeURIComponent(req.url.split('?')[0] ?? req.url)}`);
  });

  // Job polling: no authentication, as in ZStack (job uuids are unguessable unless the client chose them).
  app.all(`${API_PREFIX}/api-jobs/:uuid`, async (req, reply) => {
    if (req.method !== 'GET') {
      reply.code(405).type('text/plain; charset=utf-8').send('only GET method is allowed for querying job status');
      return;
    }
    const job = await services.jobs.get((req.params as { uuid: string }).uuid);
    if (!job) {
      reply.code(404).type('text/plain; charset=utf-8').send('the job has been expired');
      return;
    }
    if (job.state === 'Queued' || job.state === 'Running' || job.result === null) {
      reply.code(202).send({});
      return;
    }
    reply
      .code(job.state === 'Succeeded' ? 200 : 503)
      .type('application/json; charset=utf-8')
      .send(job.result);
  });

  const doc = openApiDocument(ALL_APIS);
  app.get(`${API_PREFIX}/openapi.json`, () => Promise.resolve(doc));
  registerDocsPage(app);

  registerOpsRoutes(app, services, { metrics, metricsToken: config.metricsToken });
  registerDataPlane(app, services);
  registerApis(app, ALL_APIS, { services, config });
  services.jobs.redoer = makeRedoer(ALL_APIS, services);
  return app;
}
