/** Bounds-checked header field access and small byte helpers (magic, text, zero tests). */
import { TruncatedError } from './errors.js';

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
