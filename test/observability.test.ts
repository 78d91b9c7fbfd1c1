/**
 * Operating zimage: the log lines of a real `zimage serve` process (read from its stdout as JSON lines),
 * /metrics as Prometheus text with counters that move with the calls made, /health and /ready (also
 * when PostgreSQL goes away), `zimage --version`, and the human-readable log on a real terminal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { metricsAccess } from '../src/api/ops.js';
import { ADMIN_UUID } from '../src/services/accounts.js';
import { once } from './helpers/once.js';
import { startPostgres } from './helpers/postgres.js';
import { ADMIN_WIRE_PASSWORD, execFileP, ROOT, startInProcess, startProcess, tempDir, waitFor, ZClient } from './helpers/zimage.js';

type Line = Record<string, any>;
type Server = Awaited<ReturnType<typeof startProcess>>;

// Only complete lines: the last one may still be arriving.
const jsonLines = (output: string): Line[] =>
  output
    .slice(0, output.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

/** Waits until a line matching `match` was printed, and returns it. */
async function lineOf(server: Server, what: string, match: (l: Line) => boolean): Promise<Line> {
  let found: Line | undefined;
  await waitFor(what, () => (found = jsonLines(server.output()).find(match)) !== undefined);
  return found!;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const jobUuid = () => randomBytes(16).toString('hex');

// The text exposition format: https://prometheus.io/docs/instrumenting/exposition_formats/ (values are read
// with Go's ParseFloat, which takes NaN and Inf in any case).
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? ([-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[Ii][Nn][Ff]|[Nn][Aa][Nn]))( -?\d+)?$/;
const COMMENT = /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/;

/** Parses Prometheus text; every line must be a sample, a HELP/TYPE comment or empty. Keys: `name{labels}`. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      assert.match(line, COMMENT, `not a HELP/TYPE line: ${line}`);
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

describe('operating a real zimage process: logs, metrics, health', () => {
  let work: string;
  let fixtures: string;
  let server: Server;
  let bs: string;
  const TOKEN = 'metrics-token-' + randomBytes(8).toString('hex');
  const SIZE = 3 * 1024 * 1024 + 512;

  before(async () => {
    work = await tempDir();
    fixtures = join(work, 'fixtures');
    await mkdir(fixtures);
    await mkdir(join(work, 'storage'));
    await writeFile(join(fixtures, 'disk.raw'), randomBytes(SIZE));
    server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: fixtures, ZIMAGE_METRICS_TOKEN: TOKEN });
    await server.client.login();
    bs = (await server.client.addLocalStorage(join(work, 'storage'))).uuid;
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** The one image imported (the import test looks at its log lines, the hash and export tests use it). */
  const imported = once(async () => {
    const job = jobUuid();
    const res = await server.client.call(
      'POST',
      '/images',
      { params: { name: 'disk', url: `file://${join(fixtures, 'disk.raw')}`, format: 'raw', backupStorageUuids: [bs] } },
      { 'X-Job-UUID': job },
    );
    assert.equal(res.status, 200, res.text);
    return { job, image: res.body.inventory.uuid as string };
  });
  const scrape = async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseMetrics(await res.text());
  };
  const LOGIN_FAILURES = 'zimage_login_failures_total';
  const ADD_IMAGE_FAILED = 'zimage_jobs_finished_total{api="AddImage",state="Failed"}';
  const IMPORT_REFUSED = 'zimage_security_events_total{event="import.refused"}';
  /** How much each of `names` moved between two scrapes. */
  const moved = (m0: Map<string, number>, m1: Map<string, number>, names: string[]) =>
    Object.fromEntries(names.map((n) => [n, (m1.get(n) ?? 0) - (m0.get(n) ?? 0)]));

  test('a failed login is logged with the account and client address, never the password', async () => {
    const wrong = randomBytes(64).toString('hex');
    const m0 = await scrape();
    const res = await server.client.raw(
      'PUT',
      '/accounts/login',
      { logInByAccount: { accountName: 'admin', password: wrong } },
      { Authorization: '' },
    );
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'ID.1000');
    const reqId = res.headers.get('x-request-id');
    assert.match(reqId ?? '', /^[0-9a-f]{12}$/);
    const call = await lineOf(server, 'the login call line', (l) => l.msg === 'api call' && l.reqId === reqId);
    assert.equal(call.api, 'LogInByAccount');
    assert.equal(call.status, 503);
    assert.equal(call.code, 'ID.1000');
    assert.equal(call.account, 'admin');
    assert.equal(call.client, '127.0.0.1');
    assert.equal(typeof call.durationMs, 'number');
    const event = await lineOf(server, 'the failed-login event', (l) => l.event === 'login.failed' && l.reqId === reqId);
    assert.equal(event.level, 40);
    assert.equal(event.account, 'admin');
    assert.equal(event.client, '127.0.0.1');
    assert.ok(!server.output().includes(wrong), 'the wire password is not logged');
    assert.ok(!server.output().includes(ADMIN_WIRE_PASSWORD), 'the admin password is not logged');
    assert.ok(!server.output().includes(server.client.session!), 'the session token is not logged');
    assert.deepEqual(moved(m0, await scrape(), [LOGIN_FAILURES]), { [LOGIN_FAILURES]: 1 });
  });

  test('a call signed with an access key logs an access-key-use event, never the secret or the signature', async () => {
    const created = await server.client.call('POST', '/accesskeys', { params: { accountUuid: ADMIN_UUID, userUuid: ADMIN_UUID } });
    assert.equal(created.status, 200);
    const { AccessKeyID: id, AccessKeySecret: secret } = created.body.inventory as { AccessKeyID: string; AccessKeySecret: string };
    const date = new Date().toUTCString().replace('GMT', 'UTC');
    const signature = createHmac('sha1', secret).update(`GET\n${date}\n/v1/zones`).digest('base64');
    const res = await server.client.raw('GET', '/zones', undefined, { Authorization: `ZStack ${id}:${signature}`, Date: date });
    assert.equal(res.status, 200);
    const reqId = res.headers.get('x-request-id');
    const event = await lineOf(server, 'the access-key event', (l) => l.event === 'accesskey.used' && l.reqId === reqId);
    assert.equal(event.accessKeyId, id);
    assert.equal(event.account, ADMIN_UUID);
    assert.equal(event.client, '127.0.0.1');
    assert.ok(!server.output().includes(secret), 'the secret is not logged');
    assert.ok(!server.output().includes(signature), 'the signature is not logged');
  });

  test('an import logs its call, and its job start and end with bytes and throughput', async () => {
    const { job, image } = await imported();
    const started = await lineOf(server, 'job started', (l) => l.msg === 'job started' && l.job === job);
    assert.equal(started.api, 'AddImage');
    const finished = await lineOf(server, 'job finished', (l) => l.msg === 'job finished' && l.job === job);
    assert.equal(finished.outcome, 'Succeeded');
    assert.equal(finished.bytes, SIZE);
    assert.equal(finished.resource, image);
    assert.ok(finished.bytesPerSec > 0);
    assert.ok(finished.time >= started.time);
    const call = await lineOf(server, 'AddImage call', (l) => l.msg === 'api call' && l.job === job);
    assert.equal(call.api, 'AddImage');
    assert.equal(call.status, 200);
    assert.match(call.account, /^[0-9a-f]{32}$/);
  });

  test('a refused import logs a security event naming the rule, with URL credentials masked', async () => {
    const m0 = await scrape();
    const job = jobUuid();
    const res = await server.client.call(
      'POST',
      '/images',
      { params: { name: 'bad', url: 'file:///etc/passwd', backupStorageUuids: [bs] } },
      { 'X-Job-UUID': job },
    );
    assert.equal(res.status, 503);
    const event = await lineOf(server, 'import.refused', (l) => l.event === 'import.refused' && l.job === job);
    assert.equal(event.level, 40);
    assert.equal(event.api, 'AddImage');
    assert.match(event.rule, /outside the directories zimage may import from/);
    const failed = await lineOf(server, 'job failed', (l) => l.msg === 'job failed' && l.job === job);
    assert.equal(failed.code, 'SYS.1007');

    const secret = 'pw-' + randomBytes(6).toString('hex');
    const job2 = jobUuid();
    const res2 = await server.client.call(
      'POST',
      '/images',
      { params: { name: 'bad', url: `http://someone:${secret}@169.254.169.254/latest/meta-data`, backupStorageUuids: [bs] } },
      { 'X-Job-UUID': job2 },
    );
    assert.equal(res2.status, 503);
    const event2 = await lineOf(server, 'import.refused (metadata)', (l) => l.event === 'import.refused' && l.job === job2);
    assert.match(event2.rule, /denied network 169\.254\.0\.0\/16/);
    assert.match(event2.rule, /http:\/\/\*\*\*@169\.254\.169\.254/);
    assert.ok(!server.output().includes(secret), 'the URL password is not logged');
    assert.deepEqual(moved(m0, await scrape(), [ADD_IMAGE_FAILED, IMPORT_REFUSED]), { [ADD_IMAGE_FAILED]: 2, [IMPORT_REFUSED]: 2 });
  });

  test('an unsafe image logs a security event naming the check', async () => {
    const m0 = await scrape();
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', join(fixtures, 'base.qcow2'), '1M']);
    await execFileP('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      join(fixtures, 'base.qcow2'),
      '-F',
      'qcow2',
      join(fixtures, 'overlay.qcow2'),
    ]);
    const job = jobUuid();
    const res = await server.client.call(
      'POST',
      '/images',
      { params: { name: 'overlay', url: `file://${join(fixtures, 'overlay.qcow2')}`, format: 'qcow2', backupStorageUuids: [bs] } },
      { 'X-Job-UUID': job },
    );
    assert.equal(res.status, 503);
    const event = await lineOf(server, 'image.unsafe', (l) => l.event === 'image.unsafe' && l.job === job);
    assert.equal(event.format, 'qcow2');
    assert.ok(
      event.checks.some((c: string) => /backing/i.test(c)),
      `checks: ${event.checks}`,
    );
    assert.deepEqual(moved(m0, await scrape(), [ADD_IMAGE_FAILED]), { [ADD_IMAGE_FAILED]: 1 });
  });

  test('a hash logs its call and job with the bytes read; /metrics counts the call and the bytes', async () => {
    const { image } = await imported();
    const calls = 'zimage_api_calls_total{api="CalculateImageHash",outcome="succeeded",code=""}';
    const hashed = 'zimage_bytes_hashed_total{storage_type="LocalBackupStorage"}';
    const m0 = await scrape();
    const job = jobUuid();
    const res = await server.client.call(
      'PUT',
      `/images/${image}/actions`,
      { calculateImageHash: { backupStorageUuid: bs, algorithm: 'SHA256' } },
      { 'X-Job-UUID': job },
    );
    assert.equal(res.status, 200, res.text);
    const finished = await lineOf(server, 'hash job finished', (l) => l.msg === 'job finished' && l.job === job);
    assert.equal(finished.api, 'CalculateImageHash');
    assert.equal(finished.bytes, SIZE);
    assert.equal(finished.resource, image);
    const call = await lineOf(server, 'hash call', (l) => l.msg === 'api call' && l.job === job);
    assert.equal(call.resource, image);
    assert.equal(call.status, 200);

    const m1 = await scrape();
    assert.equal((m1.get(calls) ?? 0) - (m0.get(calls) ?? 0), 1);
    assert.equal((m1.get(hashed) ?? 0) - (m0.get(hashed) ?? 0), SIZE);
    assert.ok((m1.get('zimage_hash_throughput_bytes_per_second_count{storage_type="LocalBackupStorage"}') ?? 0) >= 1);
    assert.equal(m1.get('zimage_bytes_imported_total{storage_type="LocalBackupStorage"}'), SIZE);
    assert.equal(m1.get('zimage_images{status="Ready"}'), 1);
    assert.equal(m1.get(`zimage_backup_storage_status{uuid="${bs}",name="bs",type="LocalBackupStorage",status="Connected"}`), 1);
    assert.ok((m1.get(`zimage_backup_storage_capacity_bytes{uuid="${bs}",name="bs",type="LocalBackupStorage",kind="total"}`) ?? 0) > 0);
    assert.equal(m1.get('zimage_jobs_finished_total{api="CalculateImageHash",state="Succeeded"}'), 1);
    assert.equal(m1.get('zimage_heavy_jobs{state="running"}'), 0);
    assert.ok((m1.get('process_resident_memory_bytes') ?? 0) > 0, 'process metrics are there');
  });

  test('an export download counts its bytes; the export token stays out of the log', async () => {
    const { image } = await imported();
    const exported = 'zimage_bytes_exported_total{storage_type="LocalBackupStorage"}';
    const before = (await scrape()).get(exported) ?? 0;
    const res = await server.client.call('PUT', `/backup-storage/${bs}/actions`, { exportImageFromBackupStorage: { imageUuid: image } });
    assert.equal(res.status, 200, res.text);
    const download = await fetch(res.body.imageUrl);
    assert.equal(download.status, 200);
    assert.equal((await download.arrayBuffer()).byteLength, SIZE);
    await waitFor('the exported bytes counted', async () => ((await scrape()).get(exported) ?? 0) - before === SIZE);
    const token = /\/exports\/([0-9a-f]{48})\//.exec(res.body.imageUrl)![1]!;
    assert.ok(!server.output().includes(token), 'the export token is not logged');
  });

  test('/metrics: a presented bearer token must be the configured one', async () => {
    const ok = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    const proxied = await fetch(`${server.url}/metrics`, { headers: { 'X-Forwarded-For': '203.0.113.9' } });
    assert.equal(proxied.status, 401, 'a proxied request needs the token');
    const proxiedOk = await fetch(`${server.url}/metrics`, {
      headers: { 'X-Forwarded-For': '203.0.113.9', Authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(proxiedOk.status, 200);
    const wrong = await fetch(`${server.url}/metrics`, { headers: { Authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.ok(!server.output().includes(TOKEN), 'the metrics token is not logged');
  });

  test('/health and /ready answer without a session; the version is in /ready', async () => {
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${server.url}/ready`);
    assert.equal(ready.status, 200);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    assert.deepEqual(await ready.json(), { status: 'ready', version: pkg.version });
  });

  test('at the default level (info) there are no debug lines; the per-call lines are there', () => {
    const lines = jsonLines(server.output());
    assert.ok(lines.some((l) => l.msg === 'api call'));
    assert.ok(!lines.some((l) => l.level < 30), 'no debug lines at info');
  });
});

describe('metrics access decision', () => {
  test('loopback reads without a token; elsewhere only with the configured token', () => {
    for (const addr of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1']) {
      assert.equal(metricsAccess(addr, undefined, undefined), 'allowed', addr);
      assert.equal(metricsAccess(addr, undefined, 't0k'), 'allowed', addr);
    }
    for (const addr of ['10.0.0.5', '192.168.1.2', '::ffff:10.0.0.5', 'fe80::1', undefined]) {
      assert.equal(metricsAccess(addr, undefined, undefined), 'forbidden', String(addr));
      assert.equal(metricsAccess(addr, 'Bearer t0k', undefined), 'unauthorized', String(addr));
      assert.equal(metricsAccess(addr, undefined, 't0k'), 'unauthorized', String(addr));
      assert.equal(metricsAccess(addr, 'Bearer wrong', 't0k'), 'unauthorized', String(addr));
      assert.equal(metricsAccess(addr, 'OAuth t0k', 't0k'), 'unauthorized', String(addr));
      assert.equal(metricsAccess(addr, 'Bearer t0k', 't0k'), 'allowed', String(addr));
      assert.equal(metricsAccess(addr, 'bearer  t0k ', 't0k'), 'allowed', String(addr));
    }
    assert.equal(metricsAccess('127.0.0.1', 'Bearer wrong', 't0k'), 'unauthorized', 'a wrong token is refused on loopback too');
    // Through a proxy on the same host the peer is loopback, but the client is not.
    assert.equal(metricsAccess('127.0.0.1', undefined, undefined, true), 'forbidden');
    assert.equal(metricsAccess('127.0.0.1', undefined, 't0k', true), 'unauthorized');
    assert.equal(metricsAccess('127.0.0.1', 'Bearer t0k', 't0k', true), 'allowed');
  });
});

describe('readiness', () => {
  test('/ready fails with the reason when PostgreSQL stops; /health still answers; the process survives', async () => {
    const pg = await startPostgres();
    const server = await startProcess(['--db', pg.url]).catch(async (err) => {
      await pg.stop();
      throw err;
    });
    try {
      assert.equal((await fetch(`${server.url}/ready`)).status, 200);
      await server.client.login(); // a pooled connection that the stop below breaks
      await pg.stop();
      const ready = await fetch(`${server.url}/ready`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { status: string; reason: string; version: string };
      assert.equal(body.status, 'not ready');
      assert.match(body.reason, /^the database does not answer: /);
      assert.match(body.version, /^\d+\.\d+\.\d+/);
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      assert.equal(server.proc.exitCode, null, 'zimage is still running');
    } finally {
      await server.stop();
      await pg.stop();
    }
  });

  test('/ready names migrations the database has not applied', async () => {
    const server = await startInProcess();
    try {
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name desc limit 1`.execute(server.app!.db.db);
      const last = rows[0]!.name;
      await sql`delete from kysely_migration where name = ${last}`.execute(server.app!.db.db);
      const ready = await fetch(`${server.url}/ready`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { reason: string }).reason, `database migrations not applied: ${last}`);
    } finally {
      await server.stop();
    }
  });

  test('/ready says so while the node is shutting down', async () => {
    const server = await startInProcess();
    try {
      server.app!.services.readiness.stopping = true;
      const ready = await fetch(`${server.url}/ready`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { reason: string }).reason, 'zimage is shutting down');
    } finally {
      await server.stop();
    }
  });
});

describe('the command line and the log knobs', () => {
  test('zimage --version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    const { stdout } = await execFileP(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--version']);
    assert.equal(stdout.trim(), pkg.version);
  });

  test('ZIMAGE_LOG_LEVEL=debug adds a line per request (route pattern, no URL tokens); warn drops the call lines', async () => {
    const debug = await startProcess([], { ZIMAGE_LOG_LEVEL: 'debug' });
    try {
      assert.equal((await fetch(`${debug.url}/health`)).status, 200);
      const line = await lineOf(debug, 'debug request line', (l) => l.msg === 'request' && l.route === '/health');
      assert.equal(line.level, 20);
      assert.equal(line.status, 200);
      const upload = `${debug.url}/zimage/v1/uploads/${'ab'.repeat(24)}`;
      assert.equal((await fetch(upload)).status, 404);
      await lineOf(debug, 'upload request line', (l) => l.msg === 'request' && l.route === '/zimage/v1/uploads/:token');
      assert.ok(!debug.output().includes('ab'.repeat(24)), 'the upload token is not logged');
    } finally {
      await debug.stop();
    }
    // At warn even 'zimage is serving' is not printed: the server is found on a port chosen here.
    const port = await freePort();
    const dataDir = await tempDir('zimage-warn-');
    const quiet = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), 'serve', '--port', String(port), '--data-dir', dataDir], {
      env: { ...process.env, ZIMAGE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    quiet.stdout.on('data', (d: Buffer) => (output += d.toString()));
    quiet.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const client = new ZClient(`http://127.0.0.1:${port}`);
      await waitFor(
        'the warn-level server',
        async () => (await fetch(`${client.url}/health`).catch(() => undefined))?.status === 200,
        20_000,
      );
      await client.login();
      const res = await client.raw('PUT', '/accounts/login', { logInByAccount: { accountName: 'admin', password: 'x' } });
      assert.equal(res.status, 503);
      await waitFor('the failed-login warning', () => jsonLines(output).some((l) => l.event === 'login.failed'));
      assert.ok(!jsonLines(output).some((l) => l.level < 40), `only warnings and errors at warn:\n${output}`);
    } finally {
      const exited = new Promise((r) => quiet.once('exit', r));
      quiet.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('the logger redacts secrets by field name and masks credentials in URLs and errors', async () => {
    const code = `
      import { createLogger } from ${JSON.stringify(join(ROOT, 'dist/src/observability/logging.js'))};
      const log = createLogger('info', { pretty: false });
      log.info({ url: 'http://u:s3cr3t@example.com/x', headers: { authorization: 'OAuth s3cr3t' }, params: { password: 's3cr3t', cephKey: 's3cr3t' } }, 'one');
      log.error({ err: new Error('GET https://u:s3cr3t@example.com/ failed') }, 'two');`;
    const { stdout } = await execFileP(process.execPath, ['--input-type=module', '-e', code]);
    assert.ok(!stdout.includes('s3cr3t'), stdout);
    const [one, two] = jsonLines(stdout);
    assert.equal(one!.url, 'http://***@example.com/x');
    assert.equal(one!.headers.authorization, '***');
    assert.deepEqual(one!.params, { password: '***', cephKey: '***' });
    assert.equal(two!.err.message, 'GET https://***@example.com/ failed');
  });

  test('on a terminal the log is human-readable, not JSON', async () => {
    // util-linux `script` gives zimage a terminal; Debian always has it (bsdutils is an essential package).
    await execFileP('which', ['script']);
    const dataDir = await tempDir('zimage-tty-');
    const cli = join(ROOT, 'dist/src/cli.js');
    // `script` runs the command on a new pseudo-terminal; its output is what the terminal shows.
    const proc = spawn('script', ['-qfec', `'${process.execPath}' '${cli}' serve --port 0 --data-dir '${dataDir}'`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, ZIMAGE_LOG_LEVEL: 'info' },
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await waitFor('the serving line on the terminal', () => output.includes('zimage is serving'), 20_000);
      const line = output.split('\n').find((l) => l.includes('zimage is serving'))!;
      assert.match(line, /INFO/);
      assert.ok(!line.trimStart().startsWith('{'), `not JSON: ${line}`);
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
