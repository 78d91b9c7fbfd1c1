/**
 * Fixtures for the format-inspector tests: qemu-img / genisoimage / parted runners (argument lists, never a
 * shell), a counting ByteSource, and byte-level builders for hand-crafted headers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BufferByteSource, type ByteSource } from '../../src/formats/byte-source.js';
import { crc32, crc32c } from '../../src/formats/crc.js';
import { withFileSource } from '../../src/formats/file-byte-source.js';
import { inspect, type InspectOptions, type InspectResult } from '../../src/formats/inspect.js';
import { vhdChecksum } from '../../src/formats/vhd.js';

const run = promisify(execFile);

export async function tool(cmd: string, args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/**
 * qemu-img, retried (3 tries) only when its LUKS key-derivation benchmark fails with "Unable to get accurate
 * CPU usage": qemu times PBKDF2 by the thread's CPU time, which can read 0 ms on a heavily loaded machine.
 */
export async function qemuImg(args: string[], cwd?: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await tool('qemu-img', args, cwd);
    } catch (err) {
      const stderr = String((err as { stderr?: string | Buffer }).stderr ?? '');
      if (attempt >= 3 || !stderr.includes('Unable to get accurate CPU usage')) throw err;
    }
  }
}

export interface QemuInfo {
  'virtual-size': number;
  format: string;
  'cluster-size'?: number;
  'backing-filename'?: string;
  encrypted?: boolean;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  [k: string]: unknown;
}

export async function qemuInfo(path: string, qemuFormat: string): Promise<QemuInfo> {
  return JSON.parse(await qemuImg(['info', '-f', qemuFormat, '--output=json', path])) as QemuInfo;
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'zimage-formats-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function makeTempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'zimage-formats-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function inspectFile(path: string, opts?: InspectOptions): Promise<InspectResult> {
  return withFileSource(path, (src) => inspect(src, opts));
}

export function inspectBytes(bytes: Uint8Array, opts?: InspectOptions): Promise<InspectResult> {
  return inspect(new BufferByteSource(bytes), opts);
}

export const failureIds = (r: InspectResult): string[] => r.safety.failures.map((f) => f.check);

/** Wraps a source and records every read: the total, and the largest single request. */
export class CountingSource implements ByteSource {
  total = 0;
  calls = 0;
  constructor(private readonly inner: ByteSource) {}
  size(): Promise<number> {
    return this.inner.size();
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.calls++;
    const b = await this.inner.read(offset, length);
    this.total += b.length;
    return b;
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pseudoRandom(n: number, seed = 0x9e3779b9): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Hand-crafted headers
// ---------------------------------------------------------------------------------------------------------

export interface Qcow2Opts {
  version?: number;
  size?: bigint;
  clusterBits?: number;
  backingFile?: string;
  backingFileOffset?: bigint;
  cryptMethod?: number;
  l1Size?: number;
  incompatible?: bigint;
  headerLength?: number;
  compressionType?: number;
  refcountOrder?: number;
  length?: number;
}

export function qcow2Header(o: Qcow2Opts = {}): Buffer {
  const version = o.version ?? 3;
  const clusterBits = o.clusterBits ?? 16;
  const size = o.size ?? 1024n * 1024n;
  const b = Buffer.alloc(o.length ?? 1024);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(version, 4);
  let l1 = o.l1Size;
  if (l1 === undefined) {
    const span = 1n << BigInt(Math.max(9, Math.min(clusterBits, 21)) * 2 - 3);
    l1 = Number((size + span - 1n) / span);
  }
  const put64 = (v: bigint, at: number) => b.length >= at + 8 && b.writeBigUInt64BE(v, at);
  const put32 = (v: number, at: number) => b.length >= at + 4 && b.writeUInt32BE(v >>> 0, at);
  if (o.backingFile !== undefined) {
    const off = o.backingFileOffset ?? 512n;
    put64(off, 8);
    put32(Buffer.byteLength(o.backingFile), 16);
    b.write(o.backingFile, Number(off));
  } else if (o.backingFileOffset !== undefined) put64(o.backingFileOffset, 8);
  put32(clusterBits, 20);
  put64(size, 24);
  put32(o.cryptMethod ?? 0, 32);
  put32(l1, 36);
  put64(0x30000n, 40);
  put64(0x10000n, 48);
  put32(1, 56);
  if (version >= 3) {
    put64(o.incompatible ?? (o.compressionType === 1 ? 8n : 0n), 72);
    put32(o.refcountOrder ?? 4, 96);
    put32(o.headerLength ?? 112, 100);
    if (b.length > 104) b[104] = o.compressionType ?? 0;
  }
  return b;
}

export const DEFAULT_VMDK_DESCRIPTOR = [
  '# Disk DescriptorFile',
  'version=1',
  'CID=12345678',
  'parentCID=ffffffff',
  'createType="monolithicSparse"',
  '',
  '# Extent description',
  'RW 2048 SPARSE "test.vmdk"',
  '',
  '# The Disk Data Base',
  '#DDB',
  '',
  'ddb.virtualHWVersion = "4"',
  'ddb.adapterType = "ide"',
  '',
].join('\n');

export interface VmdkOpts {
  version?: number;
  capacity?: bigint;
  grain?: bigint;
  descOffset?: bigint;
  descSize?: bigint;
  gdOffset?: bigint;
  descriptor?: string;
  /** Append a streamOptimized footer (use with gdOffset = all ones). */
  footer?: {
    markerType?: number;
    markerPad?: boolean;
    gdOffset?: bigint;
    descOffset?: bigint;
    eosType?: number;
    eosValue?: bigint;
    magic?: string;
    capacity?: bigint;
  };
}

function vmdkHeaderInto(b: Buffer, at: number, o: VmdkOpts, gd: bigint, magic = 'KDMV', capacity?: bigint, descOffset?: bigint): void {
  b.write(magic, at, 'latin1');
  b.writeUInt32LE(o.version ?? 1, at + 4);
  b.writeUInt32LE(3, at + 8);
  b.writeBigUInt64LE(capacity ?? o.capacity ?? 2048n, at + 12);
  b.writeBigUInt64LE(o.grain ?? 128n, at + 20);
  b.writeBigUInt64LE(descOffset ?? o.descOffset ?? 1n, at + 28);
  b.writeBigUInt64LE(o.descSize ?? 20n, at + 36);
  b.writeUInt32LE(512, at + 44);
  b.writeBigUInt64LE(21n, at + 48);
  b.writeBigUInt64LE(gd, at + 56);
  b.writeBigUInt64LE(21n, at + 64);
  b.write('\n \r\n', at + 73, 'latin1');
}

export function vmdkSparse(o: VmdkOpts = {}): Buffer {
  const body = Buffer.alloc(512 + 20 * 512 + 1024);
  vmdkHeaderInto(body, 0, o, o.gdOffset ?? 21n);
  body.write(o.descriptor ?? DEFAULT_VMDK_DESCRIPTOR, 512, 'latin1');
  if (!o.footer) return body;
  const f = o.footer;
  const tail = Buffer.alloc(1536);
  tail.writeBigUInt64LE(0n, 0);
  tail.writeUInt32LE(0, 8);
  tail.writeUInt32LE(f.markerType ?? 3, 12);
  if (f.markerPad) tail[100] = 1;
  vmdkHeaderInto(tail, 512, o, f.gdOffset ?? 21n, f.magic ?? 'KDMV', f.capacity, f.descOffset);
  tail.writeBigUInt64LE(f.eosValue ?? 0n, 1024);
  tail.writeUInt32LE(f.eosType ?? 0, 1036);
  return Buffer.concat([body, tail]);
}

export interface VhdOpts {
  creator?: string;
  currentSize?: bigint;
  originalSize?: bigint;
  chs?: [number, number, number];
  diskType?: number;
  badChecksum?: boolean;
  dataOffset?: bigint;
}

export function vhdFooter(o: VhdOpts = {}): Buffer {
  const f = Buffer.alloc(512);
  const type = o.diskType ?? 3;
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x10000, 12);
  f.writeBigUInt64BE(o.dataOffset ?? (type === 2 ? 0xffff_ffff_ffff_ffffn : 512n), 16);
  f.write(o.creator ?? 'qemu', 28, 'latin1');
  f.writeUInt32BE(0x50003, 32);
  f.write('Wi2k', 36, 'latin1');
  const cur = o.currentSize ?? 64n * 1024n * 1024n;
  f.writeBigUInt64BE(o.originalSize ?? cur, 40);
  f.writeBigUInt64BE(cur, 48);
  const [c, h, s] = o.chs ?? [963, 8, 17];
  f.writeUInt16BE(c, 56);
  f[58] = h;
  f[59] = s;
  f.writeUInt32BE(type, 60);
  f.writeUInt32BE((vhdChecksum(f) ^ (o.badChecksum ? 1 : 0)) >>> 0, 64);
  return f;
}

export interface VhdDynOpts extends VhdOpts {
  blockSize?: number;
  maxTableEntries?: number;
  parentName?: string;
}

/** Dynamic (or differencing) VHD: footer copy, dynamic header, BAT (all unallocated), footer. */
export function vhdDynamic(o: VhdDynOpts = {}): Buffer {
  const footer = vhdFooter({ diskType: 3, ...o });
  const cur = o.currentSize ?? 64n * 1024n * 1024n;
  const blockSize = o.blockSize ?? 2 * 1024 * 1024;
  const entries = o.maxTableEntries ?? Number((cur + BigInt(blockSize) - 1n) / BigInt(blockSize)) + 1;
  const dyn = Buffer.alloc(1024);
  dyn.write('cxsparse', 0, 'latin1');
  dyn.writeBigUInt64BE(0xffff_ffff_ffff_ffffn, 8);
  dyn.writeBigUInt64BE(1536n, 16);
  dyn.writeUInt32BE(0x10000, 24);
  dyn.writeUInt32BE(entries, 28);
  dyn.writeUInt32BE(blockSize, 32);
  if (o.parentName) {
    for (let i = 0; i < o.parentName.length && i < 256; i++) dyn.writeUInt16BE(o.parentName.charCodeAt(i), 64 + i * 2);
  }
  let sum = 0;
  for (let i = 0; i < 1024; i++) if (i < 36 || i > 39) sum += dyn[i]!;
  dyn.writeUInt32BE(~sum >>> 0, 36);
  const batLen = Math.ceil((entries * 4) / 512) * 512;
  const bat = Buffer.alloc(batLen, 0xff);
  return Buffer.concat([footer, dyn, bat, footer]);
}

/** GUID text → Microsoft byte order. */
export function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  const out = Buffer.from(b);
  out[0] = b[3]!;
  out[1] = b[2]!;
  out[2] = b[1]!;
  out[3] = b[0]!;
  out[4] = b[5]!;
  out[5] = b[4]!;
  out[6] = b[7]!;
  out[7] = b[6]!;
  return out;
}

export interface VhdxOpts {
  virtualDiskSize?: bigint;
  blockSize?: number;
  logicalSectorSize?: number;
  hasParent?: boolean;
  parentLocator?: boolean;
  regionCount?: number;
  badRegionCrc?: boolean;
  badHeaderCrc?: boolean;
  omitVirtualSize?: boolean;
}

const MIB = 1024 * 1024;

/** A minimal VHDX (4 MiB): identifier, two headers, region tables, metadata, empty BAT, no log. */
export function vhdxImage(o: VhdxOpts = {}): Buffer {
  const b = Buffer.alloc(4 * MIB);
  b.write('vhdxfile', 0, 'latin1');
  'zimage test'.split('').forEach((c, i) => b.writeUInt16LE(c.charCodeAt(0), 8 + i * 2));
  for (const [i, off] of [64 * 1024, 128 * 1024].entries()) {
    b.write('head', off, 'latin1');
    b.writeBigUInt64LE(BigInt(i + 1), off + 8);
    b.writeUInt16LE(0, off + 64);
    b.writeUInt16LE(1, off + 66);
    b.writeUInt32LE(MIB, off + 68);
    b.writeBigUInt64LE(BigInt(MIB), off + 72);
    const crc = crc32c(b.subarray(off, off + 4096), 4, 4);
    b.writeUInt32LE((o.badHeaderCrc ? crc ^ 1 : crc) >>> 0, off + 4);
  }
  const META = 2 * MIB;
  const BAT = 3 * MIB;
  for (const off of [192 * 1024, 256 * 1024]) {
    b.write('regi', off, 'latin1');
    b.writeUInt32LE(o.regionCount ?? 2, off + 8);
    guidBytes('2DC27766-F623-4200-9D64-115E9BFD4A08').copy(b, off + 16);
    b.writeBigUInt64LE(BigInt(BAT), off + 32);
    b.writeUInt32LE(MIB, off + 40);
    b.writeUInt32LE(1, off + 44);
    guidBytes('8B7CA206-4790-4B9A-B8FE-575F050F886E').copy(b, off + 48);
    b.writeBigUInt64LE(BigInt(META), off + 64);
    b.writeUInt32LE(MIB, off + 72);
    b.writeUInt32LE(1, off + 76);
    const crc = crc32c(b.subarray(off, off + 65536), 4, 4);
    b.writeUInt32LE((o.badRegionCrc ? crc ^ 1 : crc) >>> 0, off + 4);
  }
  b.write('metadata', META, 'latin1');
  const items: [string, number, number, number][] = [
    ['CAA16737-FA36-4D43-B3B6-33F0AA44E76B', 0x10000, 8, 4],
    ['2FA54224-CD1B-4876-B211-5DBED83BF4B8', 0x10008, 8, 6],
    ['BECA12AB-B2E6-4523-93EF-C309E000C746', 0x10010, 16, 6],
    ['8141BF1D-A96F-4709-BA47-F233A8FAAB5F', 0x10020, 4, 6],
    ['CDA348C7-445D-4471-9CC9-E9885251C556', 0x10024, 4, 6],
  ];
  if (o.omitVirtualSize) items.splice(1, 1);
  if (o.parentLocator) items.push(['A8D35F2D-B30B-454D-ABF7-D3D84834AB0C', 0x10100, 64, 6]);
  b.writeUInt16LE(items.length, META + 10);
  items.forEach(([g, off, len, flags], i) => {
    const at = META + 32 + i * 32;
    guidBytes(g).copy(b, at);
    b.writeUInt32LE(off, at + 16);
    b.writeUInt32LE(len, at + 20);
    b.writeUInt32LE(flags, at + 24);
  });
  b.writeUInt32LE(o.blockSize ?? 32 * MIB, META + 0x10000);
  b.writeUInt32LE(o.hasParent ? 2 : 0, META + 0x10004);
  b.writeBigUInt64LE(o.virtualDiskSize ?? 1024n * 1024n * 1024n, META + 0x10008);
  b.writeUInt32LE(o.logicalSectorSize ?? 512, META + 0x10020);
  b.writeUInt32LE(512, META + 0x10024);
  return b;
}

export interface VdiOpts {
  diskSize?: bigint;
  version?: number;
  blockSize?: number;
  sectorSize?: number;
  blocksInImage?: number;
  parentUuid?: boolean;
}

export function vdiHeader(o: VdiOpts = {}): Buffer {
  const b = Buffer.alloc(1024);
  b.write('<<< QEMU VM Virtual Disk Image >>>\n', 0, 'latin1');
  b.writeUInt32LE(0xbeda107f, 0x40);
  b.writeUInt32LE(o.version ?? 0x00010001, 0x44);
  b.writeUInt32LE(0x190, 0x48);
  b.writeUInt32LE(1, 0x4c);
  b.writeUInt32LE(512, 0x154);
  b.writeUInt32LE(1024, 0x158);
  b.writeUInt32LE(o.sectorSize ?? 512, 0x168);
  const disk = o.diskSize ?? 1024n * 1024n;
  b.writeBigUInt64LE(disk, 0x170);
  const bs = o.blockSize ?? MIB;
  b.writeUInt32LE(bs, 0x178);
  b.writeUInt32LE(o.blocksInImage ?? Number((disk + BigInt(MIB) - 1n) / BigInt(MIB)), 0x180);
  if (o.parentUuid) b[0x1b8] = 7;
  return b;
}

export function luksHeader(version = 1, payloadSectors = 8): Buffer {
  const b = Buffer.alloc(payloadSectors * 512 + 4096);
  b.write('LUKS\xba\xbe', 0, 'latin1');
  b.writeUInt16BE(version, 6);
  b.write('aes', 8, 'latin1');
  b.write('xts-plain64', 40, 'latin1');
  b.write('sha256', 72, 'latin1');
  b.writeUInt32BE(payloadSectors, 104);
  b.writeUInt32BE(64, 108);
  b.write('00000000-0000-4000-8000-000000000000', 168, 'latin1');
  return b;
}

export function qedHeader(size = 1024n * 1024n * 1024n): Buffer {
  const b = Buffer.alloc(4096);
  b.write('QED\0', 0, 'latin1');
  b.writeUInt32LE(65536, 4);
  b.writeUInt32LE(4, 8);
  b.writeUInt32LE(1, 12);
  b.writeBigUInt64LE(size, 48);
  return b;
}

export interface MbrEntryOpts {
  boot?: number;
  type: number;
  chs?: [number, number, number];
  lba?: number;
  sectors?: number;
}

export function mbrDisk(entries: (MbrEntryOpts | undefined)[], length = 1024 * 1024): Buffer {
  const b = Buffer.alloc(length);
  entries.forEach((e, slot) => {
    if (!e) return;
    const at = 446 + slot * 16;
    b[at] = e.boot ?? 0;
    const [c, h, s] = e.chs ?? [0, 0x21, 0];
    b[at + 1] = c;
    b[at + 2] = h;
    b[at + 3] = s;
    b[at + 4] = e.type;
    b.writeUInt32LE(e.lba ?? 2048, at + 8);
    b.writeUInt32LE(e.sectors ?? 0, at + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** A GPT disk: protective MBR and a primary header at LBA 1 with a valid CRC (unless `badCrc`). */
export function gptDisk(o: { badCrc?: boolean; protective?: MbrEntryOpts } = {}): Buffer {
  const b = mbrDisk([o.protective ?? { type: 0xee, chs: [0, 2, 0], lba: 1, sectors: 2047 }]);
  b.write('EFI PART', 512, 'latin1');
  b.writeUInt32LE(0x10000, 520);
  b.writeUInt32LE(92, 524);
  b.writeBigUInt64LE(1n, 536);
  b.writeBigUInt64LE(2047n, 544);
  b.writeBigUInt64LE(34n, 552);
  b.writeBigUInt64LE(2014n, 560);
  b.writeBigUInt64LE(2n, 584);
  b.writeUInt32LE(128, 592);
  b.writeUInt32LE(128, 596);
  const crc = crc32(b.subarray(512, 512 + 92), 16, 4);
  b.writeUInt32LE((o.badCrc ? crc ^ 1 : crc) >>> 0, 528);
  return b;
}

/** A tiny ISO 9660 image: 16 sectors of system area, a PVD, a terminator; `blocks` × 2048 bytes. */
export function isoImage(blocks = 20, systemArea?: Buffer): Buffer {
  const b = Buffer.alloc(blocks * 2048);
  if (systemArea) systemArea.copy(b, 0, 0, Math.min(systemArea.length, 0x8000));
  const pvd = 0x8000;
  b[pvd] = 1;
  b.write('CD001', pvd + 1, 'latin1');
  b[pvd + 6] = 1;
  b.write('ZIMAGE'.padEnd(32), pvd + 40, 'latin1');
  b.writeUInt32LE(blocks, pvd + 80);
  b.writeUInt32BE(blocks, pvd + 84);
  b.writeUInt16LE(2048, pvd + 128);
  b.writeUInt16BE(2048, pvd + 130);
  b[0x8800] = 255;
  b.write('CD001', 0x8801, 'latin1');
  return b;
}
