/** CRC-32 and CRC-32C (slicing-by-8, with a fast path for zero runs) for header checksums. */

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

/** One slicing-by-8 step: the register after 8 bytes, given (register ^ first word) and the second word. */
function slice8(t: Uint32Array, lo: number, hi: number): number {
  return (
    t[1792 + (lo & 0xff)]! ^
    t[1536 + ((lo >>> 8) & 0xff)]! ^
    t[1280 + ((lo >>> 16) & 0xff)]! ^
    t[1024 + (lo >>> 24)]! ^
    t[768 + (hi & 0xff)]! ^
    t[512 + ((hi >>> 8) & 0xff)]! ^
    t[256 + ((hi >>> 16) & 0xff)]! ^
    t[hi >>> 24]!
  );
}

function crcRun(t: Uint32Array, c: number, d: Uint8Array, from: number, to: number): number {
  let i = from;
  // Unaligned start: bytewise up to a 4-byte boundary, then whole words through a Uint32Array view.
  while (i < to && (d.byteOffset + i) % 4 !== 0) c = t[(c ^ d[i++]!) & 0xff]! ^ (c >>> 8);
  if (LITTLE_ENDIAN && to - i >= 8) {
    const words = new Uint32Array(d.buffer, d.byteOffset + i, (to - i) >>> 2);
    const pairs = words.length >>> 1;
    for (let w = 0; w < pairs * 2; w += 2) {
      c = slice8(t, (c ^ words[w]!) >>> 0, words[w + 1]!);
    }
    i += pairs * 8;
  }
  for (; i + 8 <= to; i += 8) {
    const lo = (c ^ (d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24))) >>> 0;
    const hi = (d[i + 4]! | (d[i + 5]! << 8) | (d[i + 6]! << 16) | (d[i + 7]! << 24)) >>> 0;
    c = slice8(t, lo, hi);
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
