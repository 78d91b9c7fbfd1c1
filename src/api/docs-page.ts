import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DOCS_CSS, DOCS_HTML, DOCS_JS } from './docs-assets.js';

/*
 * GET /docs: the API reference page (Swagger UI on /zstack/v1/openapi.json, with a login form), without a
 * session. Swagger UI's files are read from the installed swagger-ui-dist package: nothing from a CDN.
 * Scripts and styles come from this server only ('self'); data: images are Swagger UI's inline icons.
 */

export const DOCS_CSP =
  "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const swaggerUiDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

interface Asset {
  type: string;
  load: () => Promise<string | Buffer>;
}

const ASSETS: Record<string, Asset> = {
  'swagger-ui-bundle.js': {
    type: 'application/javascript; charset=utf-8',
    load: () => readFile(join(swaggerUiDir, 'swagger-ui-bundle.js')),
  },
  'swagger-ui.css': { type: 'text/css; charset=utf-8', load: () => readFile(join(swaggerUiDir, 'swagger-ui.css')) },
  'favicon-32x32.png': { type: 'image/png', load: () => readFile(join(swaggerUiDir, 'favicon-32x32.png')) },
  'docs.js': { type: 'application/javascript; charset=utf-8', load: () => Promise.resolve(DOCS_JS) },
  'docs.css': { type: 'text/css; charset=utf-8', load: () => Promise.resolve(DOCS_CSS) },
};

const secured = (reply: FastifyReply): FastifyReply =>
  reply.header('content-security-policy', DOCS_CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');

export function registerDocsPage(app: FastifyInstance<any, any, any, any>): void {
  const loaded = new Map<string, Promise<string | Buffer>>();

  const page = async (_req: unknown, reply: FastifyReply) =>
    secured(reply).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(DOCS_HTML);
  app.get('/docs', page);
  app.get('/docs/', page);

  app.get('/docs/assets/:file', async (req, reply) => {
    const name = (req.params as { file: string }).file;
    const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!asset) return reply.code(404).type('text/plain; charset=utf-8').send(`no such file in the API reference page: ${name}`);
    let body = loaded.get(name);
    if (!body) {
      body = asset.load();
      loaded.set(name, body);
      body.catch(() => loaded.delete(name));
    }
    return secured(reply)
      .header('cache-control', 'public, max-age=3600')
      .type(asset.type)
      .send(await body);
  });
}
