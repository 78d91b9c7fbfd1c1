/** Sector rounding and u64 helpers for header fields. */

export const SECTOR = 512n;
export const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function roundDown512(n: bigint): bigint {
  return (n / SECTOR) * SECTOR;
}
export function roundUp512(n: bigint): bigint {
  return ((n + SECTOR - 1n) / SECTOR) * SECTOR;
}

/** Bigint → number when exactly representable, else undefined. */
export function toSafeNumber(n: bigint): number | undefined {
  return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

/** For details: a u64 as a number when safe, else its decimal string (never an inexact number). */
export function u64Detail(n: bigint): number | string {
  return toSafeNumber(n) ?? n.toString();
}
