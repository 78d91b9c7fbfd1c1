import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, type Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EXPORT_PATH, ExportUnavailable, type ServedExport } from '../services/image-export.js';
import { UPLOAD_PATH, type UploadPart, type UploadStatus } from '../services/image-upload.js';
import type { Services } from '../services/index.js';
import { Refusal, ZStackError } from '../lib/errors.js';
import { REFUSAL_STATUS } from './http-status.js';

/*
 * Byte routes outside ZStack's API, authenticated by their unguessable token alone (no session):
 *
 *   PUT  /zimage/v1/uploads/<token>    raw image bytes for an AddImage with upload://; resumable:
 *                                      X-Offset: <n> or Content-Range: bytes <n>-*\/<total> (n = bytes received
 *                                      so far, else 409 with the offset); X-Image-Size: <total> declares the
 *                                      size (the PUT that reaches it completes the add), or X-Upload-Complete: true
 *   HEAD|GET /zimage/v1/uploads/<token>  the offset (X-Offset header; GET also as JSON) and state
 *   HEAD|GET /zimage/v1/exports/<token>/<name>.<format>  an exported image (single Range, ETag = MD5)
 *
 * Bodies are streamed, never buffered: this context has its own content-type parser that hands the raw
 * request stream through (the global JSON parser and its 1 MiB limit do not apply). Errors are plain text.
 */

const text = (reply: FastifyReply, status: number, message: string) =>
  reply.code(status).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send(message);

const single = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v.join(',') : v;
};

function byteCount(name: string, value: string): number {
  const v = value.trim();
  const n = Number(v);
  if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(n)) {
    throw new Refusal('invalid', `header ${name} must be a non-negative integer number of bytes, but was [${value}]`);
  }
  return n;
}

/** X-Offset / Content-Range / X-Image-Size / X-Upload-Complete of an upload PUT. */
export function parseUploadHeaders(h: IncomingHttpHeaders): UploadPart {
  let offset: number | undefined;
  let total: number | undefined;
  const xOffset = single(h, 'x-offset');
  if (xOffset !== undefined) offset = byteCount('X-Offset', xOffset);
  const range = single(h, 'content-range');
  if (range !== undefined) {
    const m = /^bytes\s+(\d+)-(\d+|\*)\/(\d+|\*)$/i.exec(range.trim());
    if (!m) {
      throw new Refusal(
        'invalid',
        `header Content-Range must be 'bytes <offset>-*/<total>' or 'bytes <first>-<last>/<total>' ('*' for an unknown total), but was [${range}]`,
      );
    }
    const first = byteCount('Content-Range', m[1]!);
    if (offset !== undefined && offset !== first) {
      throw new Refusal('invalid', `headers X-Offset (${offset}) and Content-Range (starting at ${first}) disagree`);
    }
    offset = first;
    const last = m[2] === '*' ? undefined : byteCount('Content-Range', m[2]!);
    if (last !== undefined && last < first) throw new Refusal('invalid', `header Content-Range [${range}] ends before it starts`);
    if (m[3] !== '*') {
      total = byteCount('Content-Range', m[3]!);
      if (last !== undefined && last >= total) throw new Refusal('invalid', `header Content-Range [${range}] goes past the total size`);
    }
  }
  const size = single(h, 'x-image-size');
  if (size !== undefined) {
    const n = byteCount('X-Image-Size', size);
    if (total !== undefined && total !== n)
      throw new Refusal('invalid', `headers X-Image-Size (${n}) and Content-Range (total ${total}) disagree`);
    total = n;
  }
  const completeHeader = single(h, 'x-upload-complete');
  let complete = false;
  if (completeHeader !== undefined) {
    const v = completeHeader.trim().toLowerCase();
    if (v !== 'true' && v !== 'false') {
      throw new Refusal(
        'invalid',
        `Invalid value for header [X-Upload-Complete], [${completeHeader}] is not a valid boolean string[true, false].`,
      );
    }
    complete = v === 'true';
  }
  const cl = single(h, 'content-length');
  const length = cl !== undefined && /^\d+$/.test(cl.trim()) ? Number(cl) : undefined;
  return { offset: offset ?? 0, ...(total !== undefined ? { total } : {}), complete, ...(length !== undefined ? { length } : {}) };
}

export type RangeAnswer = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * One `Range: bytes=…` against a resource of `size` bytes (RFC 9110 §14). Syntactically invalid ranges and
 * multi-range requests are ignored (the whole resource is sent), as the RFC allows.
 */
export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (!Number.isSafeInteger(suffix)) return { kind: 'full' };
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? undefined : Number(m[2]);
  if (!Number.isSafeInteger(start) || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end ?? size - 1, size - 1) };
}

const etagMatches = (header: string, etag: string) =>
  header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);

function uploadHeaders(reply: FastifyReply, st: UploadStatus): void {
  reply.header('cache-control', 'no-store').header('x-offset', String(st.offset)).header('x-upload-state', st.state);
  if (st.total !== undefined) reply.header('x-image-size', String(st.total));
}

const uploadBody = (st: UploadStatus) => ({
  imageUuid: st.imageUuid,
  state: st.state,
  offset: st.offset,
  ...(st.total !== undefined ? { totalSize: st.total } : {}),
  ...(st.error ? { error: st.error.details } : {}),
});

async function serveExport(services: Services, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { token } = req.params as { token: string };
  let ex: ServedExport;
  try {
    ex = await services.imageExport.resolve(token);
  } catch (err) {
    if (err instanceof ExportUnavailable) {
      if (err.reason === 'missing' || err.reason === 'unsafe') {
        // The stored bytes themselves: a ZStack error body, 404 when they are gone, 409 when unsafe.
        const error = new ZStackError('SYS.1006', err.message).toBody();
        reply
          .code(err.reason === 'missing' ? 404 : 409)
          .header('cache-control', 'no-store')
          .send({ error });
        return;
      }
      text(reply, err.reason === 'gone' ? 404 : 503, err.message);
      return;
    }
    throw err;
  }
  const etag = `"${ex.md5}"`;
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', etag)
    .header('cache-control', 'private, no-transform')
    .header('content-disposition', `attachment; filename="${ex.fileName}"`);
  const ifNoneMatch = single(req.headers, 'if-none-match');
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) {
    reply.code(304).send();
    return;
  }
  const ifRange = single(req.headers, 'if-range');
  const rangeHeader = ifRange !== undefined && ifRange.trim() !== etag ? undefined : single(req.headers, 'range');
  const range = parseRange(rangeHeader, ex.size);
  if (range.kind === 'unsatisfiable') {
    reply.header('content-range', `bytes */${ex.size}`);
    text(reply, 416, `the range [${rangeHeader}] is outside the image, which is ${ex.size} bytes`);
    return;
  }
  const length = range.kind === 'partial' ? range.end - range.start + 1 : ex.size;
  reply.type('application/octet-stream').header('content-length', String(length));
  if (range.kind === 'partial') reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${ex.size}`);
  else reply.code(200);
  if (req.method === 'HEAD' || length === 0) {
    reply.send();
    return;
  }
  let stream: Readable;
  try {
    stream = await ex.read(range.kind === 'partial' ? { start: range.start, end: range.end } : undefined);
  } catch (err) {
    req.log.warn({ err, image: ex.imageUuid }, 'cannot read an exported image');
    reply.removeHeader('content-length');
    reply.removeHeader('content-range');
    text(reply, 503, 'the exported image cannot be read from its backup storage right now; try again later');
    return;
  }
  // Counted on the way out; pipeline destroys the storage stream if the client goes away.
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sent += chunk.length;
      done(null, chunk);
    },
  });
  pipeline(stream, counter, () => services.events.bytesExported(ex.storageType, sent));
  return reply.send(counter);
}

/** Byte routes outside ZStack's API: image upload (PUT) and export (GET with Range). */
export function registerDataPlane(app: FastifyInstance<any, any, any, any>, services: Services): void {
  void app.register((plane, _opts, done) => {
    // The raw request stream is the body: nothing is read before the handler streams it to storage.
    plane.removeAllContentTypeParsers();
    const passThrough = (_req: FastifyRequest, payload: unknown, done: (err: Error | null, body?: unknown) => void) => done(null, payload);
    plane.addContentTypeParser('application/octet-stream', passThrough);
    plane.addContentTypeParser('*', passThrough);

    plane.put(`${UPLOAD_PATH}/:token`, async (req, reply) => {
      const { token } = req.params as { token: string };
      try {
        const part = parseUploadHeaders(req.headers);
        const body = ((req.body as Readable | undefined) ?? req.raw) as AsyncIterable<Buffer>;
        const st = await services.uploads.receive(token, body, part);
        uploadHeaders(reply, st);
        return reply.code(200).send(uploadBody(st));
      } catch (err) {
        if (!(err instanceof Refusal)) throw err;
        if (err.offset !== undefined) reply.header('x-offset', String(err.offset));
        return text(reply, REFUSAL_STATUS[err.kind], err.message);
      }
    });

    plane.route({
      method: ['GET', 'HEAD'],
      url: `${UPLOAD_PATH}/:token`,
      handler: async (req, reply) => {
        const st = await services.uploads.status((req.params as { token: string }).token);
        if (!st)
          return text(
            reply,
            404,
            'no upload at this URL: it is mistyped, expired, or zimage restarted since AddImage; add the image again',
          );
        uploadHeaders(reply, st);
        if (req.method === 'HEAD') return reply.code(200).send();
        return reply.code(200).send(uploadBody(st));
      },
    });

    plane.route({
      method: ['GET', 'HEAD'],
      url: `${EXPORT_PATH}/:token/*`,
      handler: (req, reply) => serveExport(services, req, reply),
    });
    done();
  });
}
