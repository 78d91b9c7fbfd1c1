/**
 * MBR and GPT partition tables. qemu has no driver for them: such disks are raw, so both modules report
 * format `raw` (with `details.partitionTable`), virtual size = length rounded up to 512. Sanity checks follow
 * oslo's GPT/MBR inspector (check 11).
 */
import type { BoundedReader } from './bounded-reader.js';
import { crc32 } from './crc.js';
import { Fields } from './fields.js';
import { guidToString } from './guid.js';
import { defineFormat, rawVirtualSize, type Probe } from './format.js';

export interface MbrEntry {
  slot: number;
  bootFlag: number;
  type: number;
  startChs: [number, number, number];
  startLba: number;
  sectors: number;
}

export interface GptHeader {
  sectorSize: number;
  revision: string;
  headerSize: number;
  crcValid: boolean;
  diskGuid: string;
  entriesLba: bigint;
  numEntries: number;
  entrySize: number;
  partitions: { type: string; firstLba: string; lastLba: string; name: string }[];
}

export interface PartitionInfo {
  table: 'mbr' | 'gpt';
  fileSize: number;
  entries: MbrEntry[];
  gpt?: GptHeader;
}

function hasSignature(head: Uint8Array): boolean {
  return head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa;
}
/** A FAT boot sector also ends in 55 AA: two FATs (byte 0x10) and media descriptor 0xF8 (byte 0x15). */
function isFat(head: Uint8Array): boolean {
  return head[0x10] === 2 && head[0x15] === 0xf8;
}
function mbrEntries(head: Uint8Array): MbrEntry[] {
  const f = new Fields(head.subarray(0, 512), 'mbr');
  const out: MbrEntry[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const at = 446 + slot * 16;
    out.push({
      slot,
      bootFlag: f.u8(at),
      startChs: [f.u8(at + 1), f.u8(at + 2), f.u8(at + 3)],
      type: f.u8(at + 4),
      startLba: f.u32le(at + 8),
      sectors: f.u32le(at + 12),
    });
  }
  return out;
}
const hasProtective = (head: Uint8Array) => mbrEntries(head).some((e) => e.type === 0xee);

const MAX_GPT_ENTRIES = 128;

async function parseGpt(reader: BoundedReader, probe: Probe): Promise<GptHeader | undefined> {
  for (const sectorSize of [512, 4096]) {
    const b = await reader.read(sectorSize, 512);
    const f = new Fields(b, 'gpt header');
    if (!f.equals(0, 'EFI PART')) continue;
    const headerSize = f.u32le(12);
    const crcValid = headerSize >= 92 && headerSize <= 512 && crc32(b.subarray(0, headerSize), 16, 4) === f.u32le(16);
    const h: GptHeader = {
      sectorSize,
      revision: `${f.u16le(10)}.${f.u16le(8)}`,
      headerSize,
      crcValid,
      diskGuid: guidToString(f.slice(56, 16)),
      entriesLba: f.u64le(72),
      numEntries: f.u32le(80),
      entrySize: f.u32le(84),
      partitions: [],
    };
    if (h.entrySize >= 128 && h.entrySize <= 1024 && h.entriesLba > 0n) {
      const n = Math.min(h.numEntries, MAX_GPT_ENTRIES);
      const start = h.entriesLba * BigInt(sectorSize);
      const table = await reader.read(start, Math.min(n * h.entrySize, probe.size));
      const tf = new Fields(table);
      for (let i = 0; i < n && (i + 1) * h.entrySize <= table.length; i++) {
        const at = i * h.entrySize;
        const type = tf.slice(at, 16);
        if (type.every((x) => x === 0)) continue;
        const nameBytes = tf.slice(at + 56, 72);
        let name = '';
        for (let j = 0; j + 1 < nameBytes.length; j += 2) {
          const c = nameBytes[j]! | (nameBytes[j + 1]! << 8);
          if (c === 0) break;
          name += String.fromCharCode(c);
        }
        h.partitions.push({
          type: guidToString(type),
          firstLba: tf.u64le(at + 32).toString(),
          lastLba: tf.u64le(at + 40).toString(),
          name,
        });
      }
    }
    return h;
  }
  return undefined;
}

function protectiveProblem(p: PartitionInfo): string | undefined {
  const used = p.entries.filter((e) => e.type !== 0);
  const prot = p.entries.filter((e) => e.type === 0xee);
  if (prot.length === 0) return undefined;
  if (prot.length > 1 || used.length > 1) return 'a protective (0xEE) entry must be the only partition';
  const e = prot[0]!;
  if (e.slot !== 0) return `protective entry in slot ${e.slot}, not slot 0`;
  if (e.startChs[0] !== 0 || e.startChs[1] !== 2 || e.startChs[2] !== 0) return 'protective entry does not start at CHS 0/2/0';
  if (e.startLba !== 1) return `protective entry starts at LBA ${e.startLba}, not 1`;
  return undefined;
}

const checks = [
  {
    id: 'mbr-boot-flag',
    message: (p: PartitionInfo) =>
      `partition boot flag 0x${p.entries.find((e) => e.bootFlag !== 0 && e.bootFlag !== 0x80)?.bootFlag.toString(16)} is not 0x00 or 0x80`,
    fails: (p: PartitionInfo) => p.entries.some((e) => e.bootFlag !== 0 && e.bootFlag !== 0x80),
  },
  {
    id: 'mbr-protective',
    message: (p: PartitionInfo) => `invalid GPT protective MBR: ${protectiveProblem(p)}`,
    fails: (p: PartitionInfo) => protectiveProblem(p) !== undefined,
  },
  {
    id: 'mbr-no-partitions',
    message: 'MBR has no partition',
    fails: (p: PartitionInfo) => p.entries.every((e) => e.type === 0),
  },
  {
    id: 'gpt-header',
    message: 'protective MBR without a valid GPT header (signature or CRC-32)',
    fails: (p: PartitionInfo) => p.table === 'gpt' && (!p.gpt || !p.gpt.crcValid),
  },
];

function details(p: PartitionInfo): Record<string, unknown> {
  return {
    partitionTable: p.table,
    mbrPartitions: p.entries
      .filter((e) => e.type !== 0)
      .map((e) => ({ slot: e.slot, type: e.type, bootable: e.bootFlag === 0x80, startLba: e.startLba, sectors: e.sectors })),
    ...(p.gpt
      ? {
          gpt: {
            sectorSize: p.gpt.sectorSize,
            revision: p.gpt.revision,
            diskGuid: p.gpt.diskGuid,
            headerCrcValid: p.gpt.crcValid,
            entries: p.gpt.numEntries,
            partitions: p.gpt.partitions,
          },
        }
      : {}),
  };
}

export const gpt = defineFormat<PartitionInfo>({
  format: 'gpt',
  reportAs: 'raw',
  detect: (p) => hasSignature(p.head) && !isFat(p.head) && hasProtective(p.head),
  parse: async (reader, probe) => ({
    table: 'gpt',
    fileSize: probe.size,
    entries: mbrEntries(probe.head),
    gpt: await parseGpt(reader, probe),
  }),
  virtualSize: (p) => rawVirtualSize(p.fileSize),
  details,
  checks,
});

export const mbr = defineFormat<PartitionInfo>({
  format: 'mbr',
  reportAs: 'raw',
  detect: (p) => hasSignature(p.head) && !isFat(p.head) && !hasProtective(p.head),
  parse: (_reader, probe) => ({ table: 'mbr', fileSize: probe.size, entries: mbrEntries(probe.head) }),
  virtualSize: (p) => rawVirtualSize(p.fileSize),
  details,
  checks,
});
