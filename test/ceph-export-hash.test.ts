/**
 * The socket + worker hashing used for `rbd export -` (src/storage/ceph/export-hash.ts), with `cat` as the
 * producer: no Ceph needed. The driver path itself is tested against a real cluster in storage-ceph.test.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { startExportHash } from '../src/storage/ceph/export-hash.js';
import { waitFor } from './helpers/zimage.js';

const dir = mkdtempSync(join(tmpdir(), 'zimage-export-hash-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function produce(args: string[], fd: Socket): Promise<number | null> {
  const p = spawn(args[0]!, args.slice(1), { stdio: ['ignore', fd, 'ignore'] });
  return new Promise((resolve) => p.once('close', (code) => resolve(code)));
}

test('digests every algorithm of what the producer writes, across many pipe-sized reads', async () => {
  const data = randomBytes(9 * 1024 * 1024 + 123);
  const file = join(dir, 'data');
  writeFileSync(file, data);
  const sink = await startExportHash(['MD5', 'SHA256']);
  const exit = produce(['cat', file], sink.writer);
  sink.closeWriter();
  const [code, r] = await Promise.all([exit, sink.result]);
  assert.equal(code, 0);
  assert.equal(r.bytes, data.length);
  assert.equal(sink.bytes(), data.length);
  assert.equal(r.digests.MD5, createHash('md5').update(data).digest('hex'));
  assert.equal(r.digests.SHA256, createHash('sha256').update(data).digest('hex'));
  await sink.dispose();
});

test('a killed producer ends the read (EOF) with the bytes so far; dispose removes the socket', async () => {
  const sink = await startExportHash(['SHA1']);
  const p = spawn('cat', ['/dev/zero'], { stdio: ['ignore', sink.writer, 'ignore'] });
  sink.closeWriter();
  while (sink.bytes() < 1024 * 1024) await new Promise((r) => setTimeout(r, 5));
  // While the producer still writes: the worker has stopped listening and the socket's directory is gone, so no
  // one else can join and a process killed now leaves nothing behind.
  await waitFor('the private directory to be removed', () => !existsSync(dirname(sink.path)));
  assert.equal(p.exitCode, null, 'the producer is still writing');
  p.kill('SIGKILL');
  const r = await sink.result;
  assert.ok(r.bytes >= 1024 * 1024);
  assert.equal(r.digests.SHA1, createHash('sha1').update(Buffer.alloc(r.bytes)).digest('hex'));
  await sink.dispose();
  await sink.dispose(); // idempotent
});

test('a producer that never starts still ends the read once the write end is closed', async () => {
  const sink = await startExportHash(['MD5']);
  sink.closeWriter();
  const r = await sink.result;
  assert.equal(r.bytes, 0);
  assert.equal(r.digests.MD5, createHash('md5').digest('hex'));
  await sink.dispose();
});

test('several hashes at once each get a worker of their own (a started spare or a new one) and the right digest', async () => {
  const inputs = [1, 2, 3, 4].map((i) => randomBytes(i * 1024 * 1024 + i));
  const results = await Promise.all(
    inputs.map(async (data, i) => {
      const file = join(dir, `many-${i}`);
      writeFileSync(file, data);
      const sink = await startExportHash(['SHA256']);
      const exit = produce(['cat', file], sink.writer);
      sink.closeWriter();
      const [code, r] = await Promise.all([exit, sink.result]);
      await sink.dispose();
      assert.equal(code, 0);
      return r;
    }),
  );
  results.forEach((r, i) => {
    assert.equal(r.bytes, inputs[i]!.length);
    assert.equal(r.digests.SHA256, createHash('sha256').update(inputs[i]!).digest('hex'));
  });
});
