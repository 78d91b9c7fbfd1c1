/**
 * The `Date` header of ZStack's access-key signed requests. The Java SDK writes it with
 * `EEE, dd MMM yyyy HH:mm:ss VV` (a zone id: `Mon, 30 Nov 2026 08:17:41 Etc/UTC`, `… Asia/Shanghai`) and
 * ZStack's RestServer reads it with `EEE, dd MMM yyyy HH:mm:ss z` (English, case-insensitive), which also
 * takes `GMT`, `UTC`, `Z` and offsets. JavaScript's Date.parse reads none of the zone ids, so this parses
 * the fields and resolves the zone through Intl (ICU's IANA database).
 */

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** The format ZStack names in its error text. */
export const ZSTACK_DATE_FORMAT = 'EEE, dd MMM yyyy HH:mm:ss z';

/** Offset of `zone` from UTC at `epochMs`, in milliseconds (undefined for a zone ICU does not know). */
function zoneOffsetMs(zone: string, epochMs: number): number | undefined {
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    return undefined;
  }
  const parts = Object.fromEntries(fmt.formatToParts(new Date(epochMs)).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
    Number(parts.second),
  );
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

/** A fixed offset: `Z`, `+08:00`, `-0530`, `+8`, optionally after `GMT`/`UTC`/`UT`. */
function fixedOffsetMs(zone: string): number | undefined {
  if (/^(Z|GMT|UTC|UT)$/i.test(zone)) return 0;
  const m = /^(?:GMT|UTC|UT)?([+-])(\d{1,2})(?::?(\d{2}))?$/i.exec(zone);
  if (!m) return undefined;
  const hours = Number(m[2]);
  const minutes = Number(m[3] ?? 0);
  if (hours > 18 || minutes > 59) return undefined;
  return (m[1] === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}

/** Parses a signed request's Date header into epoch milliseconds; undefined when it is not in ZStack's format. */
export function parseZStackDate(value: string): number | undefined {
  const m = /^\s*([A-Za-z]{3}), (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) (\S+)\s*$/.exec(value);
  if (!m) return undefined;
  const [, dow, dd, mon, yyyy, hh, mi, ss, zone] = m as unknown as string[];
  const month = MONTHS.indexOf(mon!.toLowerCase());
  const [day, year, hour, minute, second] = [dd, yyyy, hh, mi, ss].map(Number) as [number, number, number, number, number];
  if (month < 0 || hour > 23 || minute > 59 || second > 59) return undefined;
  const wall = Date.UTC(year, month, day, hour, minute, second);
  const check = new Date(wall);
  // Java's resolver refuses 31 Feb and a day-of-week that does not match the date.
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month) return undefined;
  if (DAYS[check.getUTCDay()] !== dow!.toLowerCase()) return undefined;
  const fixed = fixedOffsetMs(zone!);
  if (fixed !== undefined) return wall - fixed;
  const first = zoneOffsetMs(zone!, wall);
  if (first === undefined) return undefined;
  // Around a DST change the offset at the guessed instant may differ from the one at the real instant.
  const second2 = zoneOffsetMs(zone!, wall - first) ?? first;
  return wall - second2;
}
