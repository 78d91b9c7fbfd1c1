/**
 * REST-layer header checks (issue 10): X-API-Timeout is a whole number of seconds within a documented range,
 * X-Job-UUID is 32 hex digits, and no job timeout overflows Node's 2^31-1 ms timers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startInProcess, startProcess, tempDir, type TestServer } from './helpers/zimage.js';

describe('X-API-Timeout and X-Job-UUID', () => {
  let work: string;
  let server: TestServer;
  let image: string;

  before(async () => {
    work = await tempDir();
    await mkdir(join(work, 'fixtures'));
    await mkdir(join(work, 'storage'));
    await writeFile(join(work, 'fixtures', 'a.raw'), randomBytes(64 * 1024));
    // A default job timeout beyond 2^31-1 ms: a plain setTimeout would fire at once.
    server = await startInProcess({ defaultJobTimeoutMs: 2_200_000_000 }, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    await server.client.login();
    const bs = await server.client.addLocalStorage(join(work, 'storage'));
    const res = await server.client.call('POST', '/images', {
      params: { name: 'a', url: `file://${join(work, 'fixtures', 'a.raw')}`, backupStorageUuids: [bs.uuid] },
    });
    assert.equal(res.status, 200, res.text);
    image = res.body.inventory.uuid;
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const sync = (headers: Record<string, string>) => server.client.raw('PUT', `/images/${image}/actions`, { syncImageSize: {} }, headers);

  test('a timeout beyond the range is a 400 naming the range, not a job that times out at once', async () => {
    const res = await sync({ 'X-API-Timeout': '2200000' });
    assert.equal(res.status, 400);
    assert.equal(
      res.text,
      'Invalid header[X-API-Timeout], it must be a whole number of seconds from 1 to 604800 (7 days), but was [2200000]',
    );
  });

  test('zero, negative, fractional and non-numeric timeouts are 400s', async () => {
    for (const value of ['0', '-1', '1.5', 'abc', '1e3', '0x10', ' ']) {
      const res = await sync({ 'X-API-Timeout': value });
      if (value.trim() === '') continue; // an empty header is no header
      assert.equal(res.status, 400, `X-API-Timeout: ${value} → ${res.status} ${res.text}`);
      assert.match(res.text, /^Invalid header\[X-API-Timeout\], it must be a whole number of seconds from 1 to 604800/);
    }
  });

  test('the maximum is accepted and the job runs to its end', async () => {
    const res = await server.client.call('PUT', `/images/${image}/actions`, { syncImageSize: {} }, { 'X-API-Timeout': '604800' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.uuid, image);
  });

  test('a configured default timeout above 2^31-1 ms does not fire at once', async () => {
    const res = await server.client.call('PUT', `/images/${image}/actions`, { syncImageSize: {} });
    assert.equal(res.status, 200, res.text);
  });

  test('X-Job-UUID must be exactly 32 hexadecimal digits', async () => {
    const message = "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped";
    const dashed = '0123abcd-0123-4abc-8def-0123456789ab';
    for (const value of ['z'.repeat(32), dashed, dashed.slice(0, 32), '0123abcd'.repeat(4) + 'a', '../../../../../../etc/passwd....']) {
      const res = await sync({ 'X-Job-UUID': value });
      assert.equal(res.status, 400, `X-Job-UUID: ${value} → ${res.status}`);
      assert.equal(res.text, message);
    }
    const ok = await server.client.call(
      'PUT',
      `/images/${image}/actions`,
      { syncImageSize: {} },
      { 'X-Job-UUID': randomBytes(16).toString('hex') },
    );
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('no timer overflows', () => {
  test('periods and timeouts configured beyond 2^31-1 ms never reach a Node timer as such', async () => {
    const huge = String(3_000_000); // seconds: 3e9 ms
    const server = await startProcess([], {
      ZIMAGE_PING_INTERVAL_SEC: huge,
      ZIMAGE_IMAGE_EXPUNGE_INTERVAL_SEC: huge,
      ZIMAGE_JOB_RETENTION_SEC: huge,
      ZIMAGE_JOB_TIMEOUT_MS: '3000000000',
      ZIMAGE_IMPORT_CONNECT_TIMEOUT_MS: '3000000000',
      ZIMAGE_IMPORT_IDLE_TIMEOUT_MS: '3000000000',
    });
    try {
      await server.client.login();
      const res = await server.client.call('DELETE', `/images/${'0123abcd0123'}4abc8def0123456789ab`);
      assert.equal(res.status, 200, res.text);
      // Node warns on stderr when a timer is given more than 2^31-1 ms (and fires it after 1 ms instead).
      await new Promise((r) => setTimeout(r, 300));
      assert.doesNotMatch(server.output(), /TimeoutOverflowWarning/);
    } finally {
      await server.stop();
    }
  });
});
