/**
 * VHD — qemu's "vpc" (`block/vpc.c`): 512-byte big-endian footer at the end of the file, with a copy at
 * offset 0 for dynamic and differencing disks (qemu prefers the copy at 0).
 *
 * Virtual size mirrors qemu 7.2 (≤ 9.2): `cylinders × heads × sectors` unless the creator is one of
 * `win `, `qem2`, `d2v `, `CTXS`, `tap\0` or the geometry is the maximum 65535/16/255, in which case
 * `current_size / 512` sectors; then × 512. Unknown creators (Azure's `wa\0\0` included) use CHS.
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, latin1 } from './fields.js';
import { U64_MAX, u64Detail } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

const COOKIE = 'conectix';
const DYN_COOKIE = 'cxsparse';
export const VHD_FIXED = 2;
export const VHD_DYNAMIC = 3;
export const VHD_DIFFERENCING = 4;
const VHD_MAX_GEOMETRY = 65535 * 16 * 255;
const VHD_MAX_SECTORS = 0xff000000n;
/** Creators whose images qemu ≤ 9.2 sizes from current_size rather than CHS. */
export const SIZE_CREATORS_QEMU7 = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];

export interface VhdDynamicHeader {
  valid: boolean;
  tableOffset: bigint;
  maxTableEntries: number;
  blockSize: number;
  parentName?: string;
}

export interface VhdInfo {
  fileSize: number;
  footerAt: 'start' | 'end';
  checksumStored: number;
  checksumComputed: number;
  creatorApp: string;
  creatorVersion: number;
  creatorOs: string;
  dataOffset: bigint;
  originalSize: bigint;
  currentSize: bigint;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  diskType: number;
  totalSectors: bigint;
  sizeFrom: 'chs' | 'current_size';
  dynamic?: VhdDynamicHeader;
}

/** One's complement of the byte sum, with the checksum field (64..67) taken as zero. */
export function vhdChecksum(footer: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < footer.length; i++) if (i < 64 || i > 67) sum += footer[i]!;
  return ~sum >>> 0;
}

function utf16be(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = (b[i]! << 8) | b[i + 1]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

async function parse(reader: BoundedReader, probe: Probe): Promise<VhdInfo> {
  const atStart = new Fields(probe.head).equals(0, COOKIE);
  const bytes = atStart ? probe.head.subarray(0, 512) : probe.tail;
  const f = new Fields(bytes, 'vhd footer');
  f.slice(0, 512);
  const creatorBytes = f.slice(28, 4);
  const creatorApp = String.fromCharCode(...creatorBytes);
  const cylinders = f.u16be(56);
  const heads = f.u8(58);
  const sectorsPerTrack = f.u8(59);
  const currentSize = f.u64be(48);
  const chs = cylinders * heads * sectorsPerTrack;
  const useChs = !SIZE_CREATORS_QEMU7.includes(creatorApp);
  const bySize = !useChs || chs === VHD_MAX_GEOMETRY;
  const v: VhdInfo = {
    fileSize: probe.size,
    footerAt: atStart ? 'start' : 'end',
    checksumStored: f.u32be(64),
    checksumComputed: vhdChecksum(bytes),
    creatorApp,
    creatorVersion: f.u32be(32),
    creatorOs: latin1(f.slice(36, 4)),
    dataOffset: f.u64be(16),
    originalSize: f.u64be(40),
    currentSize,
    cylinders,
    heads,
    sectorsPerTrack,
    diskType: f.u32be(60),
    totalSectors: bySize ? currentSize / 512n : BigInt(chs),
    sizeFrom: bySize ? 'current_size' : 'chs',
  };
  if (v.diskType === VHD_DYNAMIC || v.diskType === VHD_DIFFERENCING) {
    const hb = v.dataOffset === U64_MAX ? new Uint8Array(0) : await reader.read(v.dataOffset, 1024);
    if (hb.length < 1024) {
      v.dynamic = { valid: false, tableOffset: 0n, maxTableEntries: 0, blockSize: 0 };
    } else {
      const d = new Fields(hb, 'vhd dynamic header');
      v.dynamic = {
        valid: d.equals(0, DYN_COOKIE),
        tableOffset: d.u64be(16),
        maxTableEntries: d.u32be(28),
        blockSize: d.u32be(32),
      };
      if (v.diskType === VHD_DIFFERENCING) v.dynamic.parentName = utf16be(d.slice(64, 512));
    }
  }
  return v;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function batProblem(v: VhdInfo): string | undefined {
  const d = v.dynamic;
  if (!d || !d.valid) return undefined;
  if (!isPow2(d.blockSize) || d.blockSize < 512) return `invalid block size ${d.blockSize}`;
  const bytes = v.totalSectors * 512n;
  if (bytes / BigInt(d.blockSize) > 0xffffffffn) return 'too many blocks';
  if (BigInt(d.maxTableEntries) * BigInt(d.blockSize) < bytes) {
    return `page table too small: ${d.maxTableEntries} × ${d.blockSize} < ${bytes}`;
  }
  if (d.maxTableEntries > 0x7fffffff / 4) return 'max_table_entries too large';
  return undefined;
}

export const vhd = defineFormat<VhdInfo>({
  format: 'vhd',
  reportAs: 'vhd',
  detect: (p) => new Fields(p.head).equals(0, COOKIE) || (p.size >= 512 && new Fields(p.tail).equals(0, COOKIE)),
  parse,
  virtualSize: (v) => v.totalSectors * 512n,
  details: (v) => ({
    diskType:
      v.diskType === VHD_FIXED
        ? 'fixed'
        : v.diskType === VHD_DYNAMIC
          ? 'dynamic'
          : v.diskType === VHD_DIFFERENCING
            ? 'differencing'
            : v.diskType,
    footerAt: v.footerAt,
    creatorApp: v.creatorApp,
    creatorVersion: v.creatorVersion,
    creatorOs: v.creatorOs,
    originalSize: u64Detail(v.originalSize),
    currentSize: u64Detail(v.currentSize),
    geometry: { cylinders: v.cylinders, heads: v.heads, sectorsPerTrack: v.sectorsPerTrack },
    sizeFrom: v.sizeFrom,
    checksumValid: v.checksumStored === v.checksumComputed,
    clusterSize: v.diskType !== VHD_FIXED && v.dynamic?.valid ? v.dynamic.blockSize : undefined,
    blockSize: v.dynamic?.blockSize,
    maxTableEntries: v.dynamic?.maxTableEntries,
    batOffset: v.dynamic ? u64Detail(v.dynamic.tableOffset) : undefined,
    parentName: v.dynamic?.parentName,
  }),
  checks: [
    {
      id: 'vhd-checksum',
      message: (v) => `incorrect footer checksum 0x${v.checksumStored.toString(16)} (computed 0x${v.checksumComputed.toString(16)})`,
      fails: (v) => v.checksumStored !== v.checksumComputed,
    },
    {
      id: 'vhd-disk-type',
      message: (v) => `disk type ${v.diskType} is not fixed (2), dynamic (3) or differencing (4)`,
      fails: (v) => v.diskType !== VHD_FIXED && v.diskType !== VHD_DYNAMIC && v.diskType !== VHD_DIFFERENCING,
    },
    {
      id: 'vhd-differencing',
      message: (v) => `differencing disk (parent ${JSON.stringify(v.dynamic?.parentName ?? '')}); qemu would read it without its parent`,
      fails: (v) => v.diskType === VHD_DIFFERENCING,
    },
    {
      id: 'vhd-footer-copy',
      message: 'a dynamic disk must keep a footer copy at offset 0',
      fails: (v) => v.footerAt === 'end' && v.diskType !== VHD_FIXED,
    },
    {
      id: 'vhd-too-large',
      message: (v) => `disk size ${v.totalSectors} sectors exceeds 2040 GiB`,
      fails: (v) => v.totalSectors > VHD_MAX_SECTORS,
    },
    {
      id: 'vhd-dynamic-header',
      message: 'dynamic disk header (cxsparse) missing or truncated',
      fails: (v) => v.dynamic !== undefined && !v.dynamic.valid,
    },
    { id: 'vhd-bat', message: (v) => `block allocation table: ${batProblem(v)}`, fails: (v) => batProblem(v) !== undefined },
    {
      id: 'vhd-fixed-length',
      message: (v) => `fixed disk of ${v.fileSize} bytes does not hold current_size ${v.currentSize} + 512`,
      fails: (v) => v.diskType === VHD_FIXED && v.footerAt === 'end' && BigInt(v.fileSize) !== v.currentSize + 512n,
    },
  ],
});
