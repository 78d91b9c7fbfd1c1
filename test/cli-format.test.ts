/** The CLI's text: byte counts, durations, the progress line and aligned tables. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytes, duration, fields, table } from '../src/client/format.js';
import { progressLine } from '../src/client/progress.js';

test('bytes are IEC units with about three significant digits', () => {
  assert.equal(bytes(0), '0 B');
  assert.equal(bytes(793.65), '794 B');
  assert.equal(bytes(1536), '1.50 KiB');
  assert.equal(bytes(50_000_000), '47.7 MiB');
  assert.equal(bytes(10 * 1024 ** 3), '10.0 GiB');
  assert.equal(bytes(300 * 1024 ** 4), '300 TiB');
  assert.equal(bytes(undefined), '-');
});

test('durations read like a clock, unknown as --', () => {
  assert.equal(duration(7), '7s');
  assert.equal(duration(65), '1m05s');
  assert.equal(duration(3725), '1h02m05s');
  assert.equal(duration(undefined), '--');
  assert.equal(duration(Infinity), '--');
});

test('the progress line: percent, bytes done / total, rate, ETA', () => {
  const line = progressLine('add disk', { done: 25 * 1024 ** 2, total: 100 * 1024 ** 2, rate: 5 * 1024 ** 2 }, '[bar]');
  assert.equal(line, 'add disk [bar]  25% | 25.0 MiB / 100 MiB | 5.00 MiB/s | ETA 15s');
  assert.match(progressLine('x', { done: 0, total: 0, rate: 0, note: 'queued' }, '[]'), /0% \| 0 B \/ \? \| 0 B\/s \| ETA -- \| queued$/);
  assert.match(progressLine('x', { done: 10, total: 10, rate: 0 }, '[]'), /100% .* ETA 0s$/);
});

test('tables align columns under their headers; fields align values', () => {
  const t = table(
    ['UUID', 'NAME'],
    [
      ['a', 'long name'],
      ['bbbbbb', undefined],
    ],
  ).split('\n');
  assert.deepEqual(t, ['UUID    NAME', 'a       long name', 'bbbbbb  -']);
  assert.equal(
    fields([
      ['uuid', 'u'],
      ['long key', 1],
      ['skipped', undefined],
    ]),
    'uuid:     u\nlong key: 1',
  );
});
