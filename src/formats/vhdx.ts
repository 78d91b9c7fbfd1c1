/**
 * VHDX (MS-VHDX, qemu `block/vhdx.c`), little-endian: file identifier at 0, two headers at 64/128 KiB,
 * region table at 192 KiB, metadata region holding the virtual disk size.
 *
 * Virtual size as qemu 7.2 computes it: `virtual_disk_size` in whole 512-byte sectors. qemu 7.2 opens only
 * 512-byte logical sectors (4096 → "Operation not supported"), so other sizes are refused
 * (`vhdx-logical-sector-size`) and have no virtual size.
 */
import type { BoundedReader } from './bounded-reader.js';
import { crc32c } from './crc.js';
import { Fields, isZero } from './fields.js';
import { guidToString } from './guid.js';
import { u64Detail } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

const MAGIC = 'vhdxfile';
const HEADER_OFFSETS = [64 * 1024, 128 * 1024];
const REGION_TABLE_OFFSET = 192 * 1024;
const TABLE_SIZE = 64 * 1024;
const MAX_ENTRIES = 2047;

export const GUID_BAT = '2DC27766-F623-4200-9D64-115E9BFD4A08';
export const GUID_METADATA = '8B7CA206-4790-4B9A-B8FE-575F050F886E';
export const GUID_FILE_PARAMETERS = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
export const GUID_VIRTUAL_DISK_SIZE = '2FA54224-CD1B-4876-B211-5DBED83BF4B8';
export const GUID_PAGE83 = 'BECA12AB-B2E6-4523-93EF-C309E000C746';
export const GUID_LOGICAL_SECTOR = '8141BF1D-A96F-4709-BA47-F233A8FAAB5F';
export const GUID_PHYSICAL_SECTOR = 'CDA348C7-445D-4471-9CC9-E9885251C556';
export const GUID_PARENT_LOCATOR = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C';

const REQUIRED_ITEMS = [GUID_FILE_PARAMETERS, GUID_VIRTUAL_DISK_SIZE, GUID_PAGE83, GUID_LOGICAL_SECTOR, GUID_PHYSICAL_SECTOR];

export interface VhdxInfo {
  creator: string;
  headerProblems: string[];
  sequence?: bigint;
  version?: number;
  logGuidSet?: boolean;
  regionProblems: string[];
  regionCount?: number;
  metadataProblems: string[];
  metadataCount?: number;
  blockSize?: number;
  hasParent: boolean;
  parentLocator: boolean;
  virtualDiskSize?: bigint;
  logicalSectorSize?: number;
  physicalSectorSize?: number;
}

function utf16le(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = b[i]! | (b[i + 1]! << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

async function parseHeaders(reader: BoundedReader, v: VhdxInfo): Promise<void> {
  let best: { seq: bigint; f: Fields } | undefined;
  const blocks = await Promise.all(HEADER_OFFSETS.map((off) => reader.read(off, 4096)));
  for (const b of blocks) {
    if (b.length < 4096) continue;
    const f = new Fields(b, 'vhdx header');
    if (!f.equals(0, 'head') || crc32c(b, 4, 4) !== f.u32le(4)) continue;
    const seq = f.u64le(8);
    if (!best || seq > best.seq) best = { seq, f };
  }
  if (!best) {
    v.headerProblems.push('no valid header (signature or CRC-32C)');
    return;
  }
  v.sequence = best.seq;
  v.version = best.f.u16le(66);
  v.logGuidSet = !isZero(best.f.slice(48, 16));
  if (v.version !== 1) v.headerProblems.push(`header version ${v.version} is not 1`);
}

async function parseRegions(reader: BoundedReader, v: VhdxInfo): Promise<{ offset: bigint; length: number } | undefined> {
  const b = await reader.read(REGION_TABLE_OFFSET, TABLE_SIZE);
  if (b.length < TABLE_SIZE) {
    v.regionProblems.push('region table truncated');
    return undefined;
  }
  const f = new Fields(b, 'vhdx region table');
  if (!f.equals(0, 'regi')) v.regionProblems.push('region table signature is not "regi"');
  if (crc32c(b, 4, 4) !== f.u32le(4)) v.regionProblems.push('region table CRC-32C mismatch');
  const count = f.u32le(8);
  v.regionCount = count;
  if (count > MAX_ENTRIES) {
    v.regionProblems.push(`region table has ${count} entries (max ${MAX_ENTRIES})`);
    return undefined;
  }
  let metadata: { offset: bigint; length: number } | undefined;
  let bat = false;
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    const guid = guidToString(f.slice(at, 16));
    const offset = f.u64le(at + 16);
    const length = f.u32le(at + 24);
    const required = (f.u32le(at + 28) & 1) !== 0;
    if (guid === GUID_BAT) {
      if (bat) v.regionProblems.push('duplicate BAT region');
      bat = true;
    } else if (guid === GUID_METADATA) {
      if (metadata) v.regionProblems.push('duplicate metadata region');
      metadata = { offset, length };
    } else if (required) {
      v.regionProblems.push(`unknown required region ${guid}`);
    }
  }
  if (!bat) v.regionProblems.push('no BAT region');
  if (!metadata) v.regionProblems.push('no metadata region');
  return metadata;
}

async function parseMetadata(reader: BoundedReader, v: VhdxInfo, region: { offset: bigint; length: number }): Promise<void> {
  // The table holds at most 2047 entries of 32 bytes after a 32-byte header; read the first 4 KiB and, in
  // the same round trip, the first 4 KiB of item data where writers put it (64 KiB into the region).
  const [first] = await Promise.all([
    reader.read(region.offset, Math.min(4096, region.length)),
    region.length >= 68 * 1024 ? reader.read(region.offset + 65536n, 4096) : Promise.resolve(undefined),
  ]);
  let b = first;
  if (b.length >= 12) {
    const want = Math.min(TABLE_SIZE, region.length, 32 + new Fields(b).u16le(10) * 32);
    if (want > b.length) b = await reader.read(region.offset, want);
  }
  if (b.length < 32) {
    v.metadataProblems.push('metadata table truncated');
    return;
  }
  const f = new Fields(b, 'vhdx metadata table');
  if (!f.equals(0, 'metadata')) v.metadataProblems.push('metadata signature is not "metadata"');
  const count = f.u16le(10);
  v.metadataCount = count;
  if (count > MAX_ENTRIES || 32 + count * 32 > b.length) {
    v.metadataProblems.push(`metadata table has ${count} entries (max ${MAX_ENTRIES}, or beyond the table)`);
    return;
  }
  const items = new Map<string, { offset: number; length: number }>();
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const guid = guidToString(f.slice(at, 16));
    const offset = f.u32le(at + 16);
    const length = f.u32le(at + 20);
    const required = (f.u32le(at + 24) & 4) !== 0;
    if (guid === GUID_PARENT_LOCATOR) v.parentLocator = true;
    if (items.has(guid)) v.metadataProblems.push(`duplicate metadata item ${guid}`);
    else if (REQUIRED_ITEMS.includes(guid) || guid === GUID_PARENT_LOCATOR) items.set(guid, { offset, length });
    else if (required) v.metadataProblems.push(`unknown required metadata item ${guid}`);
  }
  for (const g of REQUIRED_ITEMS) if (!items.has(g)) v.metadataProblems.push(`missing metadata item ${g}`);
  // Item values are tiny and fixed-size; read exactly that much, never the declared length.
  const item = async (guid: string, n: number): Promise<Fields | undefined> => {
    const it = items.get(guid);
    if (!it) return undefined;
    if (it.length < n || it.offset + n > region.length) {
      v.metadataProblems.push(`metadata item ${guid} lies outside the metadata region or is too short`);
      return undefined;
    }
    const data = await reader.read(region.offset + BigInt(it.offset), n);
    if (data.length < n) {
      v.metadataProblems.push(`metadata item ${guid} truncated`);
      return undefined;
    }
    return new Fields(data);
  };
  const fp = await item(GUID_FILE_PARAMETERS, 8);
  if (fp) {
    v.blockSize = fp.u32le(0);
    v.hasParent = (fp.u32le(4) & 2) !== 0;
  }
  const vds = await item(GUID_VIRTUAL_DISK_SIZE, 8);
  if (vds) v.virtualDiskSize = vds.u64le(0);
  const lss = await item(GUID_LOGICAL_SECTOR, 4);
  if (lss) v.logicalSectorSize = lss.u32le(0);
  const pss = await item(GUID_PHYSICAL_SECTOR, 4);
  if (pss) v.physicalSectorSize = pss.u32le(0);
}

async function parse(reader: BoundedReader, probe: Probe): Promise<VhdxInfo> {
  const head = new Fields(probe.head, 'vhdx file identifier');
  const v: VhdxInfo = {
    creator: utf16le(head.slice(8, Math.min(512, probe.head.length) - 8)),
    headerProblems: [],
    regionProblems: [],
    metadataProblems: [],
    hasParent: false,
    parentLocator: false,
  };
  const [, md] = await Promise.all([parseHeaders(reader, v), parseRegions(reader, v)]);
  if (md) await parseMetadata(reader, v, md);
  return v;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

export const vhdx = defineFormat<VhdxInfo>({
  format: 'vhdx',
  reportAs: 'vhdx',
  detect: (p) => new Fields(p.head).equals(0, MAGIC),
  parse,
  virtualSize: (v) => {
    if (v.virtualDiskSize === undefined) return undefined;
    if (v.logicalSectorSize === 512) return (v.virtualDiskSize >> 9n) * 512n;
    return undefined; // qemu 7.2 refuses other logical sector sizes (ENOTSUP)
  },
  details: (v) => ({
    creator: v.creator,
    headerSequence: v.sequence === undefined ? undefined : u64Detail(v.sequence),
    version: v.version,
    logPresent: v.logGuidSet,
    regionCount: v.regionCount,
    metadataCount: v.metadataCount,
    blockSize: v.blockSize,
    clusterSize: v.blockSize,
    logicalSectorSize: v.logicalSectorSize,
    physicalSectorSize: v.physicalSectorSize,
    virtualDiskSize: v.virtualDiskSize === undefined ? undefined : u64Detail(v.virtualDiskSize),
    hasParent: v.hasParent,
    parentLocator: v.parentLocator,
  }),
  checks: [
    { id: 'vhdx-header', message: (v) => `invalid VHDX header: ${v.headerProblems.join('; ')}`, fails: (v) => v.headerProblems.length > 0 },
    {
      id: 'vhdx-region-table',
      message: (v) => `invalid region table: ${v.regionProblems.join('; ')}`,
      fails: (v) => v.regionProblems.length > 0,
    },
    {
      id: 'vhdx-metadata',
      message: (v) => `invalid metadata: ${v.metadataProblems.join('; ')}`,
      fails: (v) => v.metadataProblems.length > 0,
    },
    {
      id: 'vhdx-parent',
      message: 'differencing VHDX (HasParent flag or parent locator): it names another file',
      fails: (v) => v.hasParent || v.parentLocator,
    },
    {
      id: 'vhdx-block-size',
      message: (v) => `block size ${v.blockSize} outside 1 MiB..256 MiB or not a power of two`,
      fails: (v) => v.blockSize !== undefined && (!isPow2(v.blockSize) || v.blockSize < 1 << 20 || v.blockSize > 256 << 20),
    },
    {
      id: 'vhdx-logical-sector-size',
      message: (v) => `logical sector size ${v.logicalSectorSize} is not 512 (qemu 7.2 cannot open it)`,
      fails: (v) => v.logicalSectorSize !== undefined && v.logicalSectorSize !== 512,
    },
    {
      id: 'vhdx-physical-sector-size',
      message: (v) => `physical sector size ${v.physicalSectorSize} is not 512 or 4096`,
      fails: (v) => v.physicalSectorSize !== undefined && v.physicalSectorSize !== 512 && v.physicalSectorSize !== 4096,
    },
  ],
});
