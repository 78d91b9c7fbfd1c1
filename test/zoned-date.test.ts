/** The signed requests' Date header, read as ZStack's RestServer reads it (`EEE, dd MMM yyyy HH:mm:ss z`). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseZStackDate } from '../src/lib/zoned-date.js';

const iso = (s: string) => {
  const ms = parseZStackDate(s);
  return ms === undefined ? undefined : new Date(ms).toISOString();
};

test('zone ids, zone names and offsets resolve to the same instant', () => {
  const at = '2026-11-30T08:17:41.000Z';
  for (const s of [
    'Mon, 30 Nov 2026 08:17:41 Etc/UTC',
    'Mon, 30 Nov 2026 08:17:41 UTC',
    'Mon, 30 Nov 2026 08:17:41 GMT',
    'Mon, 30 Nov 2026 08:17:41 Z',
    'Mon, 30 Nov 2026 16:17:41 Asia/Shanghai',
    'Mon, 30 Nov 2026 16:17:41 PRC',
    'Mon, 30 Nov 2026 03:17:41 America/New_York',
    'Mon, 30 Nov 2026 10:17:41 +02:00',
    'Mon, 30 Nov 2026 13:47:41 GMT+05:30',
    'mon, 30 nov 2026 08:17:41 etc/utc',
  ]) {
    assert.equal(iso(s), at, s);
  }
});

test('summer time is taken from the zone database', () => {
  assert.equal(iso('Wed, 01 Jul 2026 10:00:00 Europe/Berlin'), '2026-07-01T08:00:00.000Z');
  assert.equal(iso('Sun, 01 Feb 2026 10:00:00 Europe/Berlin'), '2026-02-01T09:00:00.000Z');
});

test('what Java refuses is refused: wrong weekday, impossible date, unknown zone, other formats', () => {
  for (const s of [
    'Tue, 30 Nov 2026 08:17:41 UTC',
    'Mon, 31 Nov 2026 08:17:41 UTC',
    'Mon, 30 Nov 2026 24:17:41 UTC',
    'Mon, 30 Nov 2026 08:17:41 Nowhere/Atlantis',
    'Mon, 30 Nov 2026 08:17:41',
    '2026-11-30T08:17:41Z',
    'Mon, 30 Nov 2026 08:17:41 +25:00',
  ]) {
    assert.equal(parseZStackDate(s), undefined, s);
  }
});
