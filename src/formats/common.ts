/**
 * Shared pieces of the format inspector: the typed error, the bounded reader every format module reads
 * through, the declarative safety-check type, and overflow-safe field accessors.
 *
 * Pure: imports only node built-ins and files of this directory.
 */
import type { ByteSource } from './byte-source.js';

export type ImageFormat =
  | 'raw'
  | 'qcow2'
  | 'vmdk'
  | 'vhd'
  | 'vhdx'
  | 'vdi'
  | 'iso'
  | 'qed'
  | 'luks'
  | 'gpt'
  | 'mbr';

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
    // Copy: the caller's buffer may be reused by the source, and we keep a view in the cache.
    const data = new Uint8Array(got);
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

function makeCrcTable(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}
const CRC32_TABLE = makeCrcTable(0xedb88320);
const CRC32C_TABLE = makeCrcTable(0x82f63b78);

function crc(table: Uint32Array, data: Uint8Array, skipFrom = -1, skipLen = 0): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const b = i >= skipFrom && i < skipFrom + skipLen ? 0 : data[i]!;
    c = table[(c ^ b) & 0xff]! ^ (c >>> 8);
  }
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
  return [part([3, 2, 1, 0]), part([5, 4]), part([7, 6]), part([8, 9]), part([10, 11, 12, 13, 14, 15])]
    .join('-')
    .toUpperCase();
}

/** Big-endian RFC 4122 byte order → text (LUKS uuids are ASCII, GPT uses the Microsoft order). */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Bigint → number when exactly representable, else undefined. */
export function toSafeNumber(n: bigint): number | undefined {
  return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

/** For details: a u64 as a number when safe, else its decimal string (never an inexact number). */
export function u64Detail(n: bigint): number | string {
  return toSafeNumber(n) ?? n.toString();
}
