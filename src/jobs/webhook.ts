import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from 'pino';
import { checkAddress, type ImportPolicy, maskUrl } from '../sources/index.js';
import { stripBrackets } from '../sources/cidr.js';
import { pinnedLookup, type Resolver, systemResolver } from '../sources/pinned.js';

/** How hooks are called: the import policy's networks bound them too. */
export interface WebHookOptions {
  policy: ImportPolicy;
  resolve?: Resolver;
  attempts?: number;
  delayMs?: number;
  timeoutMs?: number;
}

export type WebHookOutcome = 'delivered' | 'failed';

/** A failure that no retry can fix (refused address, redirect): delivery stops at once. */
class Final extends Error {}

/** Resolves the hook's host once and checks every address against the policy's networks. */
async function resolveChecked(url: URL, opts: WebHookOptions): Promise<LookupAddress[]> {
  const host = stripBrackets(url.hostname);
  const family = net.isIP(host);
  const addrs = family ? [{ address: host, family }] : await (opts.resolve ?? systemResolver)(host);
  if (addrs.length === 0) throw new Error(`the host "${host}" has no address`);
  for (const { address } of addrs) {
    const v = checkAddress(address, opts.policy);
    if (v.allowed) continue;
    const why =
      v.reason === 'denied'
        ? `in the denied network ${v.network}`
        : v.reason === 'not-allowed'
          ? `outside the allowed networks (${opts.policy.allowedNetworks.join(', ')})`
          : 'not an IP address';
    throw new Final(`resolves to ${address}, ${why}; not called (web hooks obey the import network policy)`);
  }
  return addrs;
}

/** One POST to the checked addresses only; resolves with the status, never follows a redirect. */
function post(
  url: URL,
  addrs: LookupAddress[],
  headers: Record<string, string>,
  payload: string,
  timeoutMs: number,
): Promise<http.IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({
      protocol: url.protocol,
      hostname: stripBrackets(url.hostname),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: { ...headers, 'Content-Length': String(Buffer.byteLength(payload)) },
      ...(url.username || url.password ? { auth: `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` } : {}),
      lookup: pinnedLookup(addrs),
      agent: false,
      timeout: timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      resolve(res);
    });
    req.end(payload);
  });
}

/**
 * POSTs a job's final body to the caller's X-Web-Hook, as ZStack does: headers X-Job-UUID and X-Job-Success,
 * retried (15 times, 2 s apart) on a non-2xx answer or an I/O error. The host is resolved once, every address
 * checked against the import policy's networks, and the connection made to those addresses only. A redirect
 * is never followed: it ends the delivery as failed.
 */
export async function callWebHook(
  url: string,
  jobUuid: string,
  success: boolean,
  body: unknown,
  log: Logger,
  opts: WebHookOptions,
): Promise<WebHookOutcome> {
  const attempts = opts.attempts ?? 15;
  const display = maskUrl(url);
  const payload = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json', 'X-Job-UUID': jobUuid, 'X-Job-Success': String(success) };
  let addrs: LookupAddress[] | undefined;
  let reason = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const target = new URL(url);
      if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Final('is not an http(s) URL');
      addrs ??= await resolveChecked(target, opts);
      const res = await post(target, addrs, headers, payload, opts.timeoutMs ?? 10_000);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return 'delivered';
      if (status >= 300 && status < 400) {
        throw new Final(
          `answered HTTP ${status}${res.headers.location ? ` to ${maskUrl(res.headers.location)}` : ''}; redirects are not followed`,
        );
      }
      reason = `answered HTTP ${status}`;
      log.warn({ job: jobUuid, webHook: display, status, attempt }, 'web hook answered non-2xx');
    } catch (err) {
      reason = (err as Error).message;
      if (err instanceof Final) break;
      log.warn({ job: jobUuid, webHook: display, err: reason, attempt }, 'web hook call failed');
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, opts.delayMs ?? 2000).unref());
  }
  log.warn({ job: jobUuid, webHook: display, reason }, `web hook delivery failed: ${display} ${reason}`);
  return 'failed';
}
