/**
 * Issue 10, finding 1: web hooks are called only for authenticated calls, never follow a redirect, and
 * connect only to the addresses that were resolved once and checked against the import network policy.
 * The policy denies 127.0.0.2/32, where a real listener counts every connection that reaches it.
 */
import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { callWebHook } from '../src/jobs/webhook.js';
import { newUuid } from '../src/lib/ids.js';
import { DEFAULT_DENIED_NETWORKS, makeImportPolicy } from '../src/sources/index.js';
import { startProcess, waitFor, ZClient } from './helpers/zimage.js';

interface Hook {
  url: string;
  port: number;
  requests: Array<{ url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

/** A hook receiver on 127.0.0.1; `answer` picks each reply's status and headers. */
async function startHook(
  answer: (n: number) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 }),
): Promise<Hook> {
  const requests: Hook['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ url: req.url ?? '', headers: req.headers, body });
      const a = answer(requests.length);
      res.writeHead(a.status, a.headers).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/** A TCP listener on a denied loopback address: it only counts connections. */
async function startDeniedListener(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const DENIED = [...DEFAULT_DENIED_NETWORKS, '127.0.0.2/32'];

describe('web hooks against a running server', () => {
  let server: Awaited<ReturnType<typeof startProcess>>;
  let denied: Awaited<ReturnType<typeof startDeniedListener>>;
  let c: ZClient;

  before(async () => {
    denied = await startDeniedListener();
    server = await startProcess([], { ZIMAGE_IMPORT_DENIED_NETWORKS: DENIED.join(',') });
    c = server.client;
    await c.login();
  });
  after(async () => {
    await server?.stop();
    await denied?.close();
  });

  /** An async call that runs as a job (deleting an image that does not exist succeeds) and then calls the hook. */
  const deleteWithHook = (client: ZClient, hook: string) => client.raw('DELETE', `/images/${newUuid()}`, undefined, { 'X-Web-Hook': hook });

  test('a call with a made-up session never calls the hook; a real session does', async () => {
    const hook = await startHook();
    try {
      const fake = new ZClient(server.url);
      fake.session = 'fake';
      const refused = await deleteWithHook(fake, hook.url);
      assert.equal(refused.status, 202);
      assert.equal((await fetch(refused.body.location)).status, 503);
      const real = await deleteWithHook(c, hook.url);
      assert.equal(real.status, 200, real.text);
      await waitFor('the hook of the authenticated call', () => hook.requests.length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(hook.requests.length, 1, 'only the authenticated call reached the hook');
      assert.equal(hook.requests[0]!.headers['x-job-success'], 'true');
    } finally {
      await hook.close();
    }
  });

  test('a 307 to a denied address is not followed: one request, zero connections there, delivery failed', async () => {
    const target = `http://127.0.0.2:${denied.port}/latest/meta-data/`;
    const hook = await startHook(() => ({ status: 307, headers: { location: target } }));
    try {
      const res = await deleteWithHook(c, hook.url);
      assert.equal(res.status, 200, res.text);
      await waitFor('the failed delivery to be logged', () =>
        server.output().includes(`web hook delivery failed: ${hook.url} answered HTTP 307`),
      );
      assert.match(server.output(), new RegExp(`answered HTTP 307 to ${target.replace(/\./g, '\\.')}; redirects are not followed`));
      assert.equal(hook.requests.length, 1, 'a redirect is a failed delivery, not retried');
      assert.equal(denied.connections(), 0, 'the redirect target was never contacted');
    } finally {
      await hook.close();
    }
  });

  test('a hook aimed straight at a denied address is refused without a connection', async () => {
    const url = `http://127.0.0.2:${denied.port}/hook`;
    await deleteWithHook(c, url);
    await waitFor('the refusal to be logged', () =>
      server.output().includes(`web hook delivery failed: ${url} resolves to 127.0.0.2, in the denied network 127.0.0.2/32`),
    );
    assert.equal(denied.connections(), 0);
  });

  test('a host name is resolved and the hook called on the checked address', async (t) => {
    const addrs = await dns.lookup('localhost', { all: true }).catch(() => []);
    if (!addrs.some((a) => a.address === '127.0.0.1')) return t.skip('localhost does not resolve to 127.0.0.1 here');
    const hook = await startHook();
    try {
      await deleteWithHook(c, `http://localhost:${hook.port}/named`);
      await waitFor('the hook call', () => hook.requests.length === 1);
      assert.equal(hook.requests[0]!.headers.host, `localhost:${hook.port}`, 'Host keeps the name');
    } finally {
      await hook.close();
    }
  });
});

describe('web hook DNS pinning', () => {
  test('the name is resolved once; every attempt connects to the checked address, not a later answer', async () => {
    const denied = await startDeniedListener();
    const hook = await startHook((n) => ({ status: n === 1 ? 500 : 200 }));
    let lookups = 0;
    // A rebinding resolver: the first answer passes the check, later ones point at the denied listener.
    const resolve = (host: string) => {
      lookups++;
      assert.equal(host, 'hook.invalid');
      return Promise.resolve([{ address: lookups === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }]);
    };
    try {
      const policy = makeImportPolicy({ deniedNetworks: DENIED });
      const url = `http://hook.invalid:${hook.port}/done`;
      const outcome = await callWebHook(url, 'c'.repeat(32), true, { ok: 1 }, pino({ level: 'silent' }), { policy, resolve, delayMs: 20 });
      assert.equal(outcome, 'delivered');
      assert.equal(lookups, 1, 'resolved once for all attempts');
      assert.equal(hook.requests.length, 2, 'the 500 was retried on the same address');
      for (const r of hook.requests) assert.equal(r.headers.host, `hook.invalid:${hook.port}`);
      assert.equal(denied.connections(), 0);
      // Any denied address among the answers refuses the hook outright.
      const mixed = () =>
        Promise.resolve([
          { address: '127.0.0.1', family: 4 },
          { address: '127.0.0.2', family: 4 },
        ]);
      const before = hook.requests.length;
      assert.equal(
        await callWebHook(url, 'c'.repeat(32), true, {}, pino({ level: 'silent' }), { policy, resolve: mixed, delayMs: 20 }),
        'failed',
      );
      assert.equal(hook.requests.length, before);
      // The allowed networks bind hooks too.
      const narrow = makeImportPolicy({ allowedNetworks: ['10.0.0.0/8'] });
      assert.equal(
        await callWebHook(hook.url, 'c'.repeat(32), true, {}, pino({ level: 'silent' }), { policy: narrow, delayMs: 20 }),
        'failed',
      );
      assert.equal(hook.requests.length, before);
    } finally {
      await hook.close();
      await denied.close();
    }
  });
});
