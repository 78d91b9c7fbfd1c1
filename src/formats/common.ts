/**
 * Shared pieces of the format inspector: the typed error, the bounded reader every format module reads
 * through, the declarative safety-check type, and overflow-safe field accessors.
 *
 * Pure: imports only node built-ins and files of this directory.
 */
import type { ByteSource } from './byte-source.js';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi' | 'iso' | 'qed' | 'luks' | 'gpt' | 'mbr';

export interface SafetyFailure {
  /** Short stable id, e.g. `qcow2-backing-file`. */
  check: string;
  message: string;
}

export type InspectErrorCode = 'BUDGET_EXCEEDED' | 'READ_FAILED' | 'BAD_SOURCE' | 'BAD_OPTIONS' | 'INTERNAL';

/** The only error `inspect()` ever rejects with. */
export class InspectError extends Error {
  override readonly name = 'InspectError';
  constructor(
    readonly code: InspectErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Thrown by field accessors and format parsers when the bytes a header needs are not in the file.
 * Internal: `inspect()` turns it into a `<format>-truncated` safety failure.
 */
export class TruncatedError extends Error {
  override readonly name = 'TruncatedError';
}

/** A safety check declared as data: `fails(parsed)` true means the image is refused. */
export interface SafetyCheck<H> {
  readonly id: string;
  readonly message: string | ((h: H) => string);
  readonly fails: (h: H) => boolean;
}

export const SECTOR = 512n;
export const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function roundDown512(n: bigint): bigint {
  return (n / SECTOR) * SECTOR;
}
export function roundUp512(n: bigint): bigint {
  return ((n + SECTOR - 1n) / SECTOR) * SECTOR;
}

/**
 * Every read of a format module goes through here: clamped to the file, charged against the budget,
 * served from already-read regions when possible, and guarded against misbehaving sources.
 */
export class BoundedReader {
  private readonly cache: { offset: number; data: Uint8Array }[] = [];
  private consumed = 0;

  constructor(
    private readonly source: ByteSource,
    readonly fileSize: number,
    readonly budget: number,
  ) {}

  get bytesRead(): number {
    return this.consumed;
  }

  /** Remaining budget in bytes. */
  get remaining(): number {
    return this.budget - this.consumed;
  }

  /**
   * Reads up to `length` bytes at `offset` (bigint offsets from headers are accepted). Returns fewer bytes
   * only at the end of the file; an empty array when `offset` is at or past the end.
   */
  async read(offset: number | bigint, length: number): Promise<Uint8Array> {
    if (typeof offset === 'bigint') {
      if (offset < 0n || offset >= BigInt(this.fileSize)) return new Uint8Array(0);
      offset = Number(offset);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InspectError('INTERNAL', `bad read request ${offset}+${length}`);
    }
    if (offset >= this.fileSize || length === 0) return new Uint8Array(0);
    const want = Math.min(length, this.fileSize - offset);
    for (const c of this.cache) {
      const cEnd = c.offset + c.data.length;
      if (offset >= c.offset && offset < cEnd) {
        const have = c.data.subarray(offset - c.offset, Math.min(cEnd, offset + want) - c.offset);
        if (have.length === want) return have;
        // Starts inside an already-read region: fetch only the remainder.
        const rest = await this.read(cEnd, want - have.length);
        const out = new Uint8Array(have.length + rest.length);
        out.set(have, 0);
        out.set(rest, have.length);
        return out;
      }
    }
    if (this.consumed + want > this.budget) {
      throw new InspectError(
        'BUDGET_EXCEEDED',
        `reading ${want} bytes at ${offset} would exceed the inspection budget of ${this.budget} bytes`,
      );
    }
    this.consumed += want;
    let got: Uint8Array;
    try {
      got = await this.source.read(offset, want);
    } catch (err) {
      throw new InspectError('READ_FAILED', `read of ${want} bytes at ${offset} failed: ${String(err)}`, {
        cause: err,
      });
    }
    if (!(got instanceof Uint8Array)) throw new InspectError('BAD_SOURCE', 'source returned a non-Uint8Array');
    if (got.length > want) {
      throw new InspectError('BAD_SOURCE', `source returned ${got.length} bytes for a ${want}-byte read`);
    }
    // Kept as returned (no copy): a source hands over the bytes it returns and must not reuse that memory.
    const data = got;
    this.cache.push({ offset, data });
    return data;
  }

  /** Like read(), but the whole range must be present; otherwise TruncatedError. */
  async readExact(offset: number | bigint, length: number, what: string): Promise<Uint8Array> {
    const data = await this.read(offset, length);
    if (data.length !== length) {
      throw new TruncatedError(`${what}: wanted ${length} bytes at ${String(offset)}, file has ${data.length}`);
    }
    return data;
  }
}

/** Bounds-checked little/big-endian field access over a header buffer. */
export class Fields {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly what = 'header',
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  private need(off: number, n: number): void {
    if (off < 0 || off + n > this.bytes.length) {
      throw new TruncatedError(`${this.what} truncated: field at ${off} (+${n}) beyond ${this.bytes.length} bytes`);
    }
  }
  u8(off: number): number {
    this.need(off, 1);
    return this.view.getUint8(off);
  }
  u16le(off: number): number {
    this.need(off, 2);
    return this.view.getUint16(off, true);
  }
  u16be(off: number): number {
    this.need(off, 2);
    return this.view.getUint16(off, false);
  }
  u32le(off: number): number {
    this.need(off, 4);
    return this.view.getUint32(off, true);
  }
  u32be(off: number): number {
    this.need(off, 4);
    return this.view.getUint32(off, false);
  }
  u64le(off: number): bigint {
    this.need(off, 8);
    return this.view.getBigUint64(off, true);
  }
  u64be(off: number): bigint {
    this.need(off, 8);
    return this.view.getBigUint64(off, false);
  }
  slice(off: number, n: number): Uint8Array {
    this.need(off, n);
    return this.bytes.subarray(off, off + n);
  }
  /** Latin-1 text of `n` bytes, cut at the first NUL. */
  text(off: number, n: number): string {
    return latin1(this.slice(off, n));
  }
  equals(off: number, magic: Uint8Array | string): boolean {
    const m = typeof magic === 'string' ? ascii(magic) : magic;
    if (off < 0 || off + m.length > this.bytes.length) return false;
    for (let i = 0; i < m.length; i++) if (this.bytes[off + i] !== m[i]) return false;
    return true;
  }
}

export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export function latin1(b: Uint8Array): string {
  let end = b.indexOf(0);
  if (end < 0) end = b.length;
  let s = '';
  for (let i = 0; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Does `bytes` contain `magic` at `off`? False when out of range. */
export function hasMagic(bytes: Uint8Array, off: number, magic: string | Uint8Array): boolean {
  return new Fields(bytes).equals(off, magic);
}

export function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Slicing-by-8 tables: 8 × 256 entries, table k at [k * 256]. */
function makeCrcTable(poly: number): Uint32Array {
  const t = new Uint32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n]!;
      t[k * 256 + n] = ((prev >>> 8) ^ t[prev & 0xff]!) >>> 0;
    }
  }
  return t;
}
const CRC32_TABLE = makeCrcTable(0xedb88320);
const CRC32C_TABLE = makeCrcTable(0x82f63b78);

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function crcRun(t: Uint32Array, c: number, d: Uint8Array, from: number, to: number): number {
  let i = from;
  // Unaligned start: bytewise up to a 4-byte boundary, then whole words through a Uint32Array view.
  while (i < to && (d.byteOffset + i) % 4 !== 0) c = t[(c ^ d[i++]!) & 0xff]! ^ (c >>> 8);
  if (LITTLE_ENDIAN && to - i >= 8) {
    const words = new Uint32Array(d.buffer, d.byteOffset + i, (to - i) >>> 2);
    const pairs = words.length >>> 1;
    for (let w = 0; w < pairs * 2; w += 2) {
      const lo = (c ^ words[w]!) >>> 0;
      const hi = words[w + 1]!;
      c =
        t[1792 + (lo & 0xff)]! ^
        t[1536 + ((lo >>> 8) & 0xff)]! ^
        t[1280 + ((lo >>> 16) & 0xff)]! ^
        t[1024 + (lo >>> 24)]! ^
        t[768 + (hi & 0xff)]! ^
        t[512 + ((hi >>> 8) & 0xff)]! ^
        t[256 + ((hi >>> 16) & 0xff)]! ^
        t[hi >>> 24]!;
    }
    i += pairs * 8;
  }
  for (; i + 8 <= to; i += 8) {
    const lo = (c ^ (d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24))) >>> 0;
    const hi = (d[i + 4]! | (d[i + 5]! << 8) | (d[i + 6]! << 16) | (d[i + 7]! << 24)) >>> 0;
    c =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + (hi & 0xff)]! ^
      t[512 + ((hi >>> 8) & 0xff)]! ^
      t[256 + ((hi >>> 16) & 0xff)]! ^
      t[hi >>> 24]!;
  }
  for (; i < to; i++) c = t[(c ^ d[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}
/**
 * Appending n zero bytes to a CRC register is linear over GF(2): precompute the operator for 2^k zero bytes
 * (zlib's crc32_combine technique) so long zero tails — most of a VHDX region table — cost O(log n).
 */
const zeroOps = new Map<Uint32Array, Uint32Array[]>();
function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}
function zeroOperators(t: Uint32Array): Uint32Array[] {
  let ops = zeroOps.get(t);
  if (ops) return ops;
  const one = new Uint32Array(32);
  for (let j = 0; j < 32; j++) {
    const c = (1 << j) >>> 0;
    one[j] = (t[c & 0xff]! ^ (c >>> 8)) >>> 0;
  }
  ops = [one];
  for (let k = 1; k < 24; k++) {
    const prev = ops[k - 1]!;
    const sq = new Uint32Array(32);
    for (let j = 0; j < 32; j++) sq[j] = gf2Times(prev, prev[j]!);
    ops.push(sq);
  }
  zeroOps.set(t, ops);
  return ops;
}
function crcZeros(t: Uint32Array, c: number, n: number): number {
  if (n < 64) {
    for (let i = 0; i < n; i++) c = t[c & 0xff]! ^ (c >>> 8);
    return c >>> 0;
  }
  const ops = zeroOperators(t);
  for (let k = 0; n > 0 && k < ops.length; k++, n = Math.floor(n / 2)) if (n % 2) c = gf2Times(ops[k]!, c);
  return c >>> 0;
}
/** Index just past the last non-zero byte of d[from, to). */
function nonZeroEnd(d: Uint8Array, from: number, to: number): number {
  let e = to;
  while (e > from && (d.byteOffset + e) % 4 !== 0) {
    if (d[e - 1] !== 0) return e;
    e--;
  }
  if (LITTLE_ENDIAN && e - from >= 4) {
    const start = from + ((4 - ((d.byteOffset + from) % 4)) % 4);
    const view = new Uint32Array(d.buffer, d.byteOffset + start, (e - start) >>> 2);
    let w = view.length;
    while (w > 0 && view[w - 1] === 0) w--;
    e = start + w * 4;
  }
  while (e > from && d[e - 1] === 0) e--;
  return e;
}
function crc(table: Uint32Array, data: Uint8Array, skipFrom = -1, skipLen = 0): number {
  let c = 0xffffffff;
  const skip = skipFrom >= 0 && skipFrom < data.length;
  const skipEnd = skip ? Math.min(data.length, skipFrom + skipLen) : 0;
  // Bytes after the last non-zero one (outside the skipped field) are a zero run.
  const tailFrom = skip ? skipEnd : 0;
  const end = Math.max(tailFrom, nonZeroEnd(data, tailFrom, data.length));
  if (!skip) {
    c = crcRun(table, c, data, 0, end);
  } else {
    c = crcRun(table, c, data, 0, skipFrom);
    c = crcZeros(table, c, skipEnd - skipFrom);
    c = crcRun(table, c, data, skipEnd, end);
  }
  c = crcZeros(table, c, data.length - end);
  return (c ^ 0xffffffff) >>> 0;
}
/** CRC-32 (zlib polynomial), optionally treating `skipLen` bytes at `skipFrom` as zero. */
export function crc32(data: Uint8Array, skipFrom = -1, skipLen = 0): number {
  return crc(CRC32_TABLE, data, skipFrom, skipLen);
}
/** CRC-32C (Castagnoli), as VHDX uses it. */
export function crc32c(data: Uint8Array, skipFrom = -1, skipLen = 0): number {
  return crc(CRC32C_TABLE, data, skipFrom, skipLen);
}

/** GUID in Microsoft byte order (first three fields little-endian) → canonical upper-case text. */
export function guidToString(b: Uint8Array): string {
  if (b.length !== 16) throw new TruncatedError('GUID truncated');
  const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
  const part = (idx: number[]) => idx.map(h).join('');
  return [part([3, 2, 1, 0]), part([5, 4]), part([7, 6]), part([8, 9]), part([10, 11, 12, 13, 14, 15])].join('-').toUpperCase();
}

/** Bigint → number when exactly representable, else undefined. */
export function toSafeNumber(n: bigint): number | undefined {
  return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

/** For details: a u64 as a number when safe, else its decimal string (never an inexact number). */
export function u64Detail(n: bigint): number | string {
  return toSafeNumber(n) ?? n.toString();
}
