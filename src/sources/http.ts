import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable } from 'node:stream';
import { isAbortError } from '../lib/errors.js';
import { MAX_TIMER_MS } from '../lib/timers.js';
import { ImportSourceError, maskUrl } from './errors.js';
import { stripBrackets } from './cidr.js';
import type { ImportPolicy } from './import-policy.js';
import { assertAddressAllowed, assertUrlAllowed } from './network-policy.js';
import { pinnedLookup, systemResolver } from './pinned.js';

export interface OpenedSource {
  /** The bytes. Errors with ImportSourceError('truncated' | 'network') if the transfer breaks or comes up short. */
  stream: Readable;
  /** Content-Length when the server sent one (the stream is checked against it). */
  length?: number;
  /** The url with credentials masked: fit for logs, messages and the database. */
  displayUrl: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`;

/** Resolves the url's host and checks every address; returns them, to be the only ones connected to. */
async function resolveChecked(url: URL, display: string, policy: ImportPolicy): Promise<LookupAddress[]> {
  const host = stripBrackets(url.hostname);
  if (!host) throw new ImportSourceError('invalid-url', `url ${display} has no host.`);
  const family = net.isIP(host);
  if (family) {
    assertAddressAllowed(host, display, policy);
    return [{ address: host, family }];
  }
  let addrs: LookupAddress[];
  try {
    addrs = await systemResolver(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ImportSourceError(
      'network',
      `cannot resolve the host "${host}" of url ${display} (${code}); check the url and the DNS configuration of the zimage server.`,
    );
  }
  if (addrs.length === 0) throw new ImportSourceError('network', `the host "${host}" of url ${display} has no address.`);
  for (const a of addrs) assertAddressAllowed(a.address, display, policy);
  return addrs;
}

interface Exchange {
  req: http.ClientRequest;
  res: http.IncomingMessage;
  /** Set when zimage itself broke the connection (idle timeout); preferred over the socket's error. */
  failure: () => ImportSourceError | undefined;
  /** First error the response emitted, if any. */
  bodyError: () => Error | undefined;
}

function networkError(err: unknown, display: string): unknown {
  if (err instanceof ImportSourceError || isAbortError(err)) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED')
    return new ImportSourceError('network', `connection to ${display} was refused; is the server running and the port right?`);
  if (code === 'ECONNRESET')
    return new ImportSourceError('network', `connection to ${display} was reset by the server before it answered.`);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new ImportSourceError(
      'network',
      `the host of ${display} is unreachable from the zimage server (${code}); check routing and firewalls.`,
    );
  }
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code)) {
    return new ImportSourceError(
      'network',
      `TLS verification of ${display} failed (${code}); the server's certificate is not trusted by the zimage server.`,
    );
  }
  return new ImportSourceError('network', `request to ${display} failed: ${code || e.message || 'unknown error'}.`);
}

function exchange(
  url: URL,
  addrs: LookupAddress[],
  auth: string | undefined,
  display: string,
  policy: ImportPolicy,
  signal: AbortSignal | undefined,
): Promise<Exchange> {
  const mod = url.protocol === 'https:' ? https : http;
  let failure: ImportSourceError | undefined;
  let bodyError: Error | undefined;
  return new Promise<Exchange>((resolve, reject) => {
    const req = mod.request({
      protocol: url.protocol,
      hostname: stripBrackets(url.hostname),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: { 'user-agent': 'zimage', accept: '*/*', 'accept-encoding': 'identity' },
      ...(auth ? { auth } : {}),
      // Connect to the checked addresses only: no second DNS answer can slip in (rebinding).
      lookup: pinnedLookup(addrs),
      agent: false,
      ...(signal ? { signal } : {}),
    });
    const fail = (err: ImportSourceError): void => {
      failure ??= err;
      req.destroy(err);
    };
    const connectTimer = setTimeout(
      () =>
        fail(
          new ImportSourceError(
            'network',
            `could not connect to ${display} within ${seconds(policy.connectTimeoutMs)}; check that the server is reachable.`,
          ),
        ),
      Math.min(policy.connectTimeoutMs, MAX_TIMER_MS),
    );
    req.on('socket', (socket) => {
      const onConnect = (): void => {
        clearTimeout(connectTimer);
        socket.setTimeout(Math.min(policy.idleTimeoutMs, MAX_TIMER_MS));
      };
      if (socket.connecting) socket.once('connect', onConnect);
      else onConnect();
      socket.on('timeout', () =>
        fail(new ImportSourceError('network', `${display} sent nothing for ${seconds(policy.idleTimeoutMs)}; the transfer was stopped.`)),
      );
    });
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      res.on('error', (err) => {
        bodyError ??= err;
      });
      resolve({ req, res, failure: () => failure, bodyError: () => bodyError });
    });
    req.on('error', (err) => {
      clearTimeout(connectTimer);
      reject(networkError(failure ?? err, display));
    });
    req.end();
  });
}

function body(ex: Exchange, length: number | undefined, display: string, signal: AbortSignal | undefined): Readable {
  const { res } = ex;
  async function* chunks(): AsyncGenerator<Buffer> {
    let n = 0;
    const short = (why: string): ImportSourceError =>
      new ImportSourceError(
        'truncated',
        `the download of ${display} broke off after ${n}${length === undefined ? '' : ` of ${length}`} bytes (${why}); ` +
          'the image is incomplete, retry the import.',
      );
    try {
      for await (const chunk of res) {
        n += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (isAbortError(err)) throw err;
      const mine = ex.failure();
      if (mine) throw mine;
      const e = (ex.bodyError() ?? err) as NodeJS.ErrnoException;
      throw short(e.code === 'ECONNRESET' ? 'connection closed by the server' : (e.code ?? e.message));
    }
    if (signal?.aborted) throw signal.reason;
    if (!res.complete) throw short(ex.failure()?.message ?? 'connection closed by the server');
    if (length !== undefined && n !== length) throw short('fewer bytes than the announced Content-Length');
  }
  return Readable.from(chunks(), { objectMode: false });
}

/**
 * GETs an http(s) url under the policy: scheme and port checked, the host resolved here and every address
 * checked, the connection made to those addresses only, redirects followed by hand (each hop checked
 * again, credentials dropped when the origin changes). Non-2xx is an error; the body stream errors if the
 * transfer breaks or is shorter than Content-Length.
 */
export async function openHttpSource(url: URL, policy: ImportPolicy, opts: { signal?: AbortSignal } = {}): Promise<OpenedSource> {
  const { signal } = opts;
  const originalDisplay = maskUrl(url);
  let current = new URL(url.href);
  let auth =
    current.username || current.password ? `${decodeURIComponent(current.username)}:${decodeURIComponent(current.password)}` : undefined;
  for (let hop = 0; ; hop++) {
    signal?.throwIfAborted();
    const display = hop === 0 ? originalDisplay : `${maskUrl(current)} (redirected from ${originalDisplay})`;
    assertUrlAllowed(current, display, policy);
    const addrs = await resolveChecked(current, display, policy);
    signal?.throwIfAborted();
    const ex = await exchange(current, addrs, auth, display, policy, signal);
    const { res } = ex;
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      res.destroy();
      const location = res.headers.location;
      if (!location) throw new ImportSourceError('http-status', `${display} answered HTTP ${status} without a Location header.`, status);
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new ImportSourceError('invalid-url', `${display} redirected to an invalid url.`, status);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new ImportSourceError(
          'forbidden',
          `${display} redirected to ${maskUrl(next)}; redirects may only lead to http:// or https:// urls.`,
          status,
        );
      }
      if (hop >= policy.maxRedirects) {
        throw new ImportSourceError(
          'http-status',
          `too many redirects: ${originalDisplay} was redirected more than ${policy.maxRedirects} times (last to ${maskUrl(next)}); check the url.`,
          status,
        );
      }
      if (next.username || next.password) auth = `${decodeURIComponent(next.username)}:${decodeURIComponent(next.password)}`;
      else if (next.origin !== current.origin) auth = undefined;
      current = next;
      continue;
    }
    if (status < 200 || status > 299) {
      res.destroy();
      const text = `${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
      if (status === 404 || status === 410) {
        throw new ImportSourceError('not-found', `${display} answered HTTP ${text}: there is no image at this url; check it.`, status);
      }
      const hint =
        status === 401 || status === 403
          ? ' (the server wants credentials or refuses access)'
          : status >= 500
            ? ' (a server-side failure; retry later)'
            : '';
      throw new ImportSourceError('http-status', `${display} answered HTTP ${text}${hint}.`, status);
    }
    const header = res.headers['content-length'];
    const length = header !== undefined && /^\d+$/.test(header) && !res.headers['transfer-encoding'] ? Number(header) : undefined;
    const out: OpenedSource = { stream: body(ex, length, display, signal), displayUrl: originalDisplay };
    if (length !== undefined) out.length = length;
    return out;
  }
}
