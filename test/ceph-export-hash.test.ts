/**
 * The FIFO + worker hashing used for `rbd export -` (src/storage/ceph/export-hash.ts), with `cat` as the
 * producer: no Ceph needed. The driver path itself is tested against a real cluster in storage-ceph.test.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startFifoHash } from '../src/storage/ceph/export-hash.js';

const dir = mkdtempSync(join(tmpdir(), 'zimage-fifo-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function produce(args: string[], fd: number): Promise<number | null> {
  const p = spawn(args[0]!, args.slice(1), { stdio: ['ignore', fd, 'ignore'] });
  return new Promise((resolve) => p.once('close', (code) => resolve(code)));
}

test('digests every algorithm of what the producer writes, across many pipe-sized reads', async () => {
  const data = randomBytes(9 * 1024 * 1024 + 123);
  const file = join(dir, 'data');
  writeFileSync(file, data);
  const sink = await startFifoHash(['MD5', 'SHA256']);
  const exit = produce(['cat', file], sink.writeFd);
  sink.closeWriter();
  const [code, r] = await Promise.all([exit, sink.result]);
  assert.equal(code, 0);
  assert.equal(r.bytes, data.length);
  assert.equal(sink.bytes(), data.length);
  assert.equal(r.digests.MD5, createHash('md5').update(data).digest('hex'));
  assert.equal(r.digests.SHA256, createHash('sha256').update(data).digest('hex'));
  await sink.dispose();
});

test('a killed producer ends the read (EOF) with the bytes so far; dispose removes the FIFO', async () => {
  const sink = await startFifoHash(['SHA1']);
  const p = spawn('cat', ['/dev/zero'], { stdio: ['ignore', sink.writeFd, 'ignore'] });
  sink.closeWriter();
  while (sink.bytes() < 1024 * 1024) await new Promise((r) => setTimeout(r, 5));
  p.kill('SIGKILL');
  const r = await sink.result;
  assert.ok(r.bytes >= 1024 * 1024);
  assert.equal(r.digests.SHA1, createHash('sha1').update(Buffer.alloc(r.bytes)).digest('hex'));
  assert.ok(existsSync(sink.path));
  await sink.dispose();
  await sink.dispose(); // idempotent
  assert.ok(!existsSync(sink.path), 'the FIFO is removed');
});

test('a producer that never starts still ends the read once the write end is closed', async () => {
  const sink = await startFifoHash(['MD5']);
  sink.closeWriter();
  const r = await sink.result;
  assert.equal(r.bytes, 0);
  assert.equal(r.digests.MD5, createHash('md5').digest('hex'));
  await sink.dispose();
});
