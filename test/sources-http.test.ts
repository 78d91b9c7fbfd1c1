import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as dns } from 'node:dns';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { DEFAULT_IMPORT_POLICY, ImportSourceError, makeImportPolicy, openImportSource } from '../src/sources/index.js';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { readAll, rejectsKind } from './helpers/assert.js';

const BYTES = randomBytes(300_000);
let srv: TestHttpServer;
let other: TestHttpServer;
const policy = DEFAULT_IMPORT_POLICY;

before(async () => {
  srv = await startTestHttpServer({ 'disk.raw': BYTES, 'small.txt': 'hello' });
  other = await startTestHttpServer({ 'disk.raw': BYTES });
});
after(async () => {
  await srv.close();
  await other.close();
});

const rejectsSource = (p: Promise<unknown>, kind: ImportSourceError['kind'], re?: RegExp) => rejectsKind(p, ImportSourceError, kind, re);

test('200 with Content-Length: bytes and length come through', async () => {
  const r = await openImportSource(srv.url('/files/disk.raw'), policy);
  assert.equal(r.length, BYTES.length);
  assert.equal(r.displayUrl, srv.url('/files/disk.raw'));
  assert.ok((await readAll(r.stream)).equals(BYTES));
  const req = srv.requests.at(-1);
  assert.equal(req?.headers['accept-encoding'], 'identity');
});

test('chunked answer: no length, bytes come through', async () => {
  const r = await openImportSource(srv.url('/chunked/disk.raw'), policy);
  assert.equal(r.length, undefined);
  assert.ok((await readAll(r.stream)).equals(BYTES));
});

test('404 is not-found, other non-2xx is http-status, both naming status and url', async () => {
  const e = await rejectsSource(openImportSource(srv.url('/files/nope.raw'), policy), 'not-found', /HTTP 404/);
  assert.equal(e.status, 404);
  assert.match(e.message, new RegExp(srv.url('/files/nope.raw').replace(/[.]/g, '\\.')));
  const e500 = await rejectsSource(openImportSource(srv.url('/status/503'), policy), 'http-status', /HTTP 503/);
  assert.equal(e500.status, 503);
  await rejectsSource(openImportSource(srv.url('/status/403'), policy), 'http-status', /HTTP 403/);
});

test('redirects are followed (relative and absolute)', async () => {
  const rel = await openImportSource(srv.url(`/redirect?to=${encodeURIComponent('/files/disk.raw')}`), policy);
  assert.equal(rel.length, BYTES.length);
  assert.ok((await readAll(rel.stream)).equals(BYTES));
  const abs = await openImportSource(srv.url(`/redirect?status=307&to=${encodeURIComponent(other.url('/files/disk.raw'))}`), policy);
  assert.ok((await readAll(abs.stream)).equals(BYTES));
});

test('metadata and link-local addresses are refused, directly and through redirects', async () => {
  const direct = await rejectsSource(openImportSource('http://169.254.169.254/latest/meta-data/', policy), 'forbidden');
  assert.match(
    direct.message,
    /resolves to 169\.254\.169\.254, which is in the denied network 169\.254\.0\.0\/16 \(link-local\/metadata\)/,
  );
  assert.match(direct.message, /ZIMAGE_IMPORT_DENIED_NETWORKS/);
  await rejectsSource(openImportSource('http://[::ffff:169.254.169.254]/', policy), 'forbidden', /169\.254\.0\.0\/16/);
  await rejectsSource(openImportSource('http://[::ffff:a9fe:a9fe]:8080/x', policy), 'forbidden', /169\.254\.0\.0\/16/);
  await rejectsSource(openImportSource('http://2852039166/', policy), 'forbidden', /169\.254\.0\.0\/16/); // decimal form
  await rejectsSource(openImportSource('http://[fe80::1]/', policy), 'forbidden', /fe80::\/10/);
  await rejectsSource(openImportSource('http://100.100.100.200/latest/meta-data', policy), 'forbidden', /Alibaba/);
  await rejectsSource(openImportSource(`http://0.0.0.0:${srv.port}/files/disk.raw`, policy), 'forbidden', /0\.0\.0\.0\/8/);

  const before = srv.requests.length;
  const redir = await rejectsSource(
    openImportSource(srv.url(`/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/iam')}`), policy),
    'forbidden',
    /169\.254\.169\.254.*redirected from.*denied network 169\.254\.0\.0\/16/,
  );
  assert.equal(srv.requests.length, before + 1, 'only the redirecting request reached a server');
  assert.ok(!redir.message.includes('\n    at '), 'no stack in the message');
  await rejectsSource(
    openImportSource(srv.url(`/redirect?to=${encodeURIComponent('http://[::ffff:169.254.169.254]/')}`), policy),
    'forbidden',
    /169\.254\.0\.0\/16/,
  );
});

test('redirects to other schemes are refused', async () => {
  await rejectsSource(
    openImportSource(srv.url(`/redirect?to=${encodeURIComponent('file:///etc/passwd')}`), policy),
    'forbidden',
    /http:\/\/ or https:\/\//,
  );
  await rejectsSource(openImportSource(srv.url(`/redirect?to=${encodeURIComponent('ftp://example.com/x')}`), policy), 'forbidden');
});

test('redirect loops and over-long chains stop after maxRedirects', async () => {
  const before = srv.requests.length;
  await rejectsSource(openImportSource(srv.url('/loop'), policy), 'http-status', /too many redirects.*more than 5/);
  assert.equal(srv.requests.length - before, 6, 'the first request plus 5 redirects');
  await rejectsSource(openImportSource(srv.url('/loop/0'), makeImportPolicy({ maxRedirects: 2 })), 'http-status', /more than 2/);
  // A chain within the limit works.
  const ok = await openImportSource(
    srv.url(`/redirect?to=${encodeURIComponent(`/redirect?to=${encodeURIComponent('/files/small.txt')}`)}`),
    makeImportPolicy({ maxRedirects: 2 }),
  );
  assert.equal((await readAll(ok.stream)).toString(), 'hello');
});

test('a connection dropped mid-body is a stream error, not a short file', async () => {
  const r = await openImportSource(srv.url('/drop/disk.raw?after=100000'), policy);
  assert.equal(r.length, BYTES.length);
  let got = 0;
  let caught: unknown;
  try {
    for await (const c of r.stream) got += (c as Buffer).length;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ImportSourceError, `expected an ImportSourceError, got ${String(caught)} after ${got} bytes`);
  assert.equal(caught.kind, 'truncated');
  assert.match(caught.message, new RegExp(`after \\d+ of ${BYTES.length} bytes`));
  assert.ok(got < BYTES.length);
});

test('a dropped chunked body is a stream error too', async () => {
  // /drop sends a Content-Length; a server that drops a chunked body is covered by res.complete. Simulate
  // it with a raw socket server.
  const raw = net.createServer((sock) => {
    sock.once('data', () => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => sock.destroy(), 20);
    });
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  try {
    const port = (raw.address() as net.AddressInfo).port;
    const r = await openImportSource(`http://127.0.0.1:${port}/x`, policy);
    assert.equal(r.length, undefined);
    await assert.rejects(readAll(r.stream), (e: unknown) => e instanceof ImportSourceError && e.kind === 'truncated');
  } finally {
    raw.close();
  }
});

test('a stalled body hits the idle timeout', async () => {
  const p = makeImportPolicy({ idleTimeoutMs: 300 });
  const t0 = Date.now();
  const r = await openImportSource(srv.url('/stall/disk.raw?after=1000'), p);
  await assert.rejects(
    readAll(r.stream),
    (e: unknown) => e instanceof ImportSourceError && e.kind === 'network' && /sent nothing for 0\.3s/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 5000);
});

test('aborting stops the transfer with an AbortError', async () => {
  const ac = new AbortController();
  const r = await openImportSource(srv.url('/stall/disk.raw?after=10'), policy, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(readAll(r.stream), (e: unknown) => (e as Error).name === 'AbortError');
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(
    openImportSource(srv.url('/files/small.txt'), policy, { signal: pre.signal }),
    (e: unknown) => (e as Error).name === 'AbortError',
  );
});

test('allowedNetworks without 127.0.0.0/8 refuses the local server', async () => {
  const p = makeImportPolicy({ allowedNetworks: ['10.0.0.0/8'] });
  const e = await rejectsSource(
    openImportSource(srv.url('/files/small.txt'), p),
    'forbidden',
    /outside the allowed networks \(10\.0\.0\.0\/8\)/,
  );
  assert.match(e.message, /ZIMAGE_IMPORT_ALLOWED_NETWORKS/);
  const ok = await openImportSource(srv.url('/files/small.txt'), makeImportPolicy({ allowedNetworks: ['127.0.0.0/8'] }));
  assert.equal((await readAll(ok.stream)).toString(), 'hello');
});

test('host names are resolved and every address is checked', async (t) => {
  const addrs = (await dns.lookup('localhost', { all: true }).catch(() => [])).map((a) => a.address);
  if (!addrs.includes('127.0.0.1')) return t.skip('localhost does not resolve to 127.0.0.1 here');
  const url = `http://localhost:${srv.port}/files/small.txt`;
  const ok = await openImportSource(url, policy);
  assert.equal((await readAll(ok.stream)).toString(), 'hello');
  await rejectsSource(
    openImportSource(url, makeImportPolicy({ deniedNetworks: ['127.0.0.0/8'] })),
    'forbidden',
    /localhost.*resolves to 127\.0\.0\.1, which is in the denied network 127\.0\.0\.0\/8/,
  );
  if (addrs.includes('::1')) {
    // One bad address among good ones is enough to refuse.
    await rejectsSource(openImportSource(url, makeImportPolicy({ deniedNetworks: ['::1/128'] })), 'forbidden', /::1\/128/);
  }
  await rejectsSource(
    openImportSource('http://no-such-host.invalid/x', policy),
    'network',
    /cannot resolve the host "no-such-host\.invalid"/,
  );
});

test('credentials are sent but never shown; dropped on a cross-origin redirect', async () => {
  const url = `http://alice:s3cr3t@127.0.0.1:${srv.port}/files/small.txt`;
  const r = await openImportSource(url, policy);
  assert.equal(r.displayUrl, `http://***@127.0.0.1:${srv.port}/files/small.txt`);
  assert.equal((await readAll(r.stream)).toString(), 'hello');
  assert.equal(srv.requests.at(-1)?.headers.authorization, `Basic ${Buffer.from('alice:s3cr3t').toString('base64')}`);

  const e = await rejectsSource(openImportSource(`http://alice:s3cr3t@127.0.0.1:${srv.port}/files/missing`, policy), 'not-found');
  assert.ok(!e.message.includes('s3cr3t') && !e.message.includes('alice'), e.message);
  const f = await rejectsSource(openImportSource('http://alice:s3cr3t@169.254.169.254/', policy), 'forbidden');
  assert.ok(!f.message.includes('s3cr3t'), f.message);

  const cross = await openImportSource(
    `http://alice:s3cr3t@127.0.0.1:${srv.port}/redirect?to=${encodeURIComponent(other.url('/files/disk.raw'))}`,
    policy,
  );
  await readAll(cross.stream);
  assert.equal(other.requests.at(-1)?.headers.authorization, undefined, 'credentials must not follow to another origin');
  const same = await openImportSource(`http://alice:s3cr3t@127.0.0.1:${srv.port}/redirect?to=/files/small.txt`, policy);
  await readAll(same.stream);
  assert.ok(srv.requests.at(-1)?.headers.authorization, 'credentials follow a same-origin redirect');
});

test('refused connections, disallowed schemes and ports are clear errors', async () => {
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await rejectsSource(openImportSource(`http://127.0.0.1:${port}/x`, policy), 'network', /refused/);
  await rejectsSource(openImportSource(srv.url('/files/small.txt'), makeImportPolicy({ allowedSchemes: ['https'] })), 'unsupported-scheme');
  await rejectsSource(
    openImportSource(srv.url('/files/small.txt'), makeImportPolicy({ deniedPorts: [srv.port] })),
    'forbidden',
    new RegExp(`port ${srv.port}`),
  );
});

test('the connection goes to the checked addresses only (no second DNS answer)', async (t) => {
  const dnsModule = await import('node:dns');
  let calls = 0;
  const answers: Record<string, Array<{ address: string; family: number }>> = {
    'image-mirror.test': [{ address: '127.0.0.1', family: 4 }],
    'mixed.test': [
      { address: '127.0.0.1', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ],
  };
  t.mock.method(dnsModule.promises, 'lookup', (host: string) => {
    calls++;
    const a = answers[host];
    if (!a) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(a);
  });
  // The name exists only in the mocked resolver: if the socket resolved it again, the request would fail.
  const r = await openImportSource(`http://image-mirror.test:${srv.port}/files/small.txt`, policy);
  assert.equal((await readAll(r.stream)).toString(), 'hello');
  assert.equal(calls, 1);
  assert.equal(srv.requests.at(-1)?.headers.host, `image-mirror.test:${srv.port}`);
  await rejectsSource(
    openImportSource(`http://mixed.test:${srv.port}/files/small.txt`, policy),
    'forbidden',
    /mixed\.test.*169\.254\.169\.254/,
  );
});

test('a redirect hop to a denied address is refused before any connection to it', async () => {
  // A real listener on a loopback address the policy denies: it must see no connection at all.
  let connections = 0;
  const target = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.2', resolve));
  try {
    const port = (target.address() as net.AddressInfo).port;
    const denying = makeImportPolicy({ deniedNetworks: [...DEFAULT_IMPORT_POLICY.deniedNetworks, '127.0.0.2/32'] });
    const before = srv.requests.length;
    for (const status of [301, 302, 303, 307, 308]) {
      await rejectsSource(
        openImportSource(srv.url(`/redirect?status=${status}&to=${encodeURIComponent(`http://127.0.0.2:${port}/disk.raw`)}`), denying),
        'forbidden',
        /127\.0\.0\.2.*redirected from.*denied network 127\.0\.0\.2\/32/,
      );
    }
    assert.equal(srv.requests.length - before, 5, 'only the redirecting requests reached a server');
    assert.equal(connections, 0, 'the denied address was never contacted');
  } finally {
    await new Promise<void>((resolve) => target.close(() => resolve()));
  }
});
