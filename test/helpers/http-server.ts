/**
 * A small real HTTP server on 127.0.0.1 (port 0) for import tests.
 *
 *   GET /files/<name>            the registered bytes (or file on disk), with Content-Length
 *   GET /chunked/<name>          the same bytes, chunked (no Content-Length)
 *   GET /drop/<name>?after=N     announces the full Content-Length, sends N bytes (default half), then
 *                                destroys the connection
 *   GET /stall/<name>?after=N    sends headers and N bytes (default 0), then nothing until the client leaves
 *   GET /slow/<name>?bps=N       the bytes with Content-Length, at about N bytes per second (default 1 MiB/s)
 *   GET /redirect?to=<url>&status=302   redirects to `to` (absolute or relative)
 *   GET /loop/<n>                redirects to /loop/<n+1> forever (a redirect chain with no end)
 *   GET /loop                    redirects to itself
 *   GET /status/<code>           answers that status with a short text body
 *   anything else                404
 *
 * Every request is recorded (method, url, headers) in `requests`.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface TestHttpServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** Registers bytes (or a path on disk, served by streaming) under /files/<name>, /drop/<name>, ... */
  addFile(name: string, content: Uint8Array | string | { path: string }): void;
  /** `origin + path` */
  url(path: string): string;
  close(): Promise<void>;
}

type Content = Buffer | { path: string };

async function sizeOf(c: Content): Promise<number> {
  return Buffer.isBuffer(c) ? c.length : (await fsp.stat(c.path)).size;
}

function sendRange(res: http.ServerResponse, c: Content, end: number, then: () => void): void {
  if (Buffer.isBuffer(c)) {
    res.write(c.subarray(0, end), then);
    return;
  }
  if (end === 0) {
    then();
    return;
  }
  const s = createReadStream(c.path, { end: end - 1 });
  s.on('data', (chunk) => res.write(chunk));
  s.on('end', then);
  s.on('error', () => res.destroy());
}

export async function startTestHttpServer(files: Record<string, Uint8Array | string | { path: string }> = {}): Promise<TestHttpServer> {
  const store = new Map<string, Content>();
  const add = (name: string, content: Uint8Array | string | { path: string }): void => {
    store.set(name, typeof content === 'string' || content instanceof Uint8Array ? Buffer.from(content) : content);
  };
  for (const [k, v] of Object.entries(files)) add(k, v);
  const requests: RecordedRequest[] = [];

  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const u = new URL(req.url ?? '/', 'http://x');
    const parts = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const [route, name] = parts;
    const content = name === undefined ? undefined : store.get(name);
    const after = u.searchParams.get('after');

    void (async () => {
      switch (route) {
        case 'files':
        case 'chunked': {
          if (!content) break;
          const size = await sizeOf(content);
          res.statusCode = 200;
          res.setHeader('content-type', 'application/octet-stream');
          if (route === 'files') res.setHeader('content-length', size);
          if (req.method === 'HEAD') return void res.end();
          if (Buffer.isBuffer(content)) {
            // write() then end(): end(data) alone would add a Content-Length.
            if (route === 'chunked') res.write(content);
            return void (route === 'chunked' ? res.end() : res.end(content));
          }
          createReadStream(content.path).pipe(res);
          return;
        }
        case 'drop':
        case 'stall': {
          if (!content) break;
          const size = await sizeOf(content);
          const n = after === null ? (route === 'drop' ? Math.floor(size / 2) : 0) : Number(after);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
          res.flushHeaders();
          sendRange(res, content, Math.min(n, size), () => {
            // Let the bytes leave before the connection is cut (drop) or left hanging (stall).
            if (route === 'drop') setTimeout(() => req.socket.destroy(), 20);
          });
          return;
        }
        case 'slow': {
          if (!content) break;
          const size = await sizeOf(content);
          const bps = Number(u.searchParams.get('bps') ?? 1024 * 1024);
          const all = Buffer.isBuffer(content) ? content : await fsp.readFile(content.path);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
          const step = Math.max(1, Math.floor(bps / 10));
          let sent = 0;
          const tick = () => {
            if (res.destroyed) return;
            const chunk = all.subarray(sent, sent + step);
            sent += chunk.length;
            if (sent >= size) return void res.end(chunk);
            res.write(chunk);
            setTimeout(tick, 100);
          };
          tick();
          return;
        }
        case 'redirect': {
          const to = u.searchParams.get('to');
          if (!to) break;
          res.writeHead(Number(u.searchParams.get('status') ?? 302), { location: to });
          return void res.end();
        }
        case 'loop': {
          const next = name === undefined ? '/loop' : `/loop/${Number(name) + 1}`;
          res.writeHead(302, { location: next });
          return void res.end();
        }
        case 'status': {
          const code = Number(name);
          res.writeHead(code, { 'content-type': 'text/plain' });
          return void res.end(`status ${code}\n`);
        }
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    })().catch(() => res.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    port,
    requests,
    addFile: add,
    url: (p: string) => origin + (p.startsWith('/') ? p : `/${p}`),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
