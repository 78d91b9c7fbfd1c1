import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from './errors.js';

/** What the upload URL answers (HEAD headers, or the PUT's JSON). */
export interface UploadState {
  status: number;
  state?: string;
  offset?: number;
  text: string;
}

function request(
  url: string,
  method: string,
  headers: Record<string, string | number>,
  body?: NodeJS.ReadableStream,
  signal?: AbortSignal,
): Promise<UploadState> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise<UploadState>((resolve, reject) => {
    const req = mod.request(u, { method, headers, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const h = res.headers['x-offset'];
        resolve({
          status: res.statusCode ?? 0,
          state: json?.state ?? (res.headers['x-upload-state'] as string | undefined),
          offset: json?.offset ?? (typeof h === 'string' ? Number(h) : undefined),
          text,
        });
      });
    });
    req.on('error', (err) => reject(signal?.aborted ? signal.reason : new ApiError(0, `upload to ${u.origin} failed: ${err.message}`)));
    if (!body) return void req.end();
    pipeline(body, req).catch((err) => {
      req.destroy();
      reject(signal?.aborted ? signal.reason : err);
    });
  });
}

/** HEAD on the upload URL: the bytes the server holds so far. */
export async function uploadOffset(url: string): Promise<UploadState> {
  return request(url, 'HEAD', {});
}

/**
 * Streams `file` from the server's offset to the end, declaring the total size (the PUT that reaches it
 * completes the image, so an empty body can never complete one). A 409 (another request still holds the
 * upload, or a different offset) is retried from the offset the server names.
 */
export async function sendFile(
  url: string,
  file: string,
  size: number,
  opts: { onBytes: (done: number) => void; signal: AbortSignal; limitRate?: number },
): Promise<UploadState> {
  let head = await uploadOffset(url);
  for (let attempt = 0; ; attempt++) {
    if (head.status !== 200 || head.offset === undefined) return head;
    if (head.state === 'Succeeded') return head;
    const offset = head.offset;
    let done = offset;
    opts.onBytes(done);
    const began = Date.now();
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        done += chunk.length;
        opts.onBytes(done);
        // --limit-rate: hold the chunk until the average rate is back under the limit.
        const ahead = opts.limitRate ? ((done - offset) * 1000) / opts.limitRate - (Date.now() - began) : 0;
        if (ahead > 0) setTimeout(() => cb(null, chunk), ahead);
        else cb(null, chunk);
      },
    });
    const body = offset < size ? createReadStream(file, { start: offset, highWaterMark: 256 * 1024 }).pipe(counter) : undefined;
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': size - offset,
      'X-Offset': offset,
      'X-Image-Size': size,
    };
    const answer = await request(url, 'PUT', headers, body, opts.signal);
    if (answer.status !== 409 || attempt >= 40) return answer;
    // The server has not yet seen the previous connection end, or holds a different offset: ask again.
    await sleep(250, undefined, { signal: opts.signal });
    head = await uploadOffset(url);
  }
}
