/**
 * VMDK (qemu `block/vmdk.c`): hosted sparse extents (`KDMV`, monolithicSparse / streamOptimized, with the
 * end-of-stream footer when `gd_offset` is all ones) and text descriptor files (monolithicFlat & co).
 * Virtual size: the extents' sectors × 512; for a sparse file, `capacity × 512` (from the footer copy when the
 * grain directory is at the end).
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, isZero, latin1 } from './fields.js';
import { U64_MAX, u64Detail } from './numbers.js';
import { defineFormat, PROBE_HEAD, type Probe } from './format.js';

const MAGIC = 'KDMV';
/** qemu reads at most 1 MiB − 1 of descriptor. */
export const VMDK_MAX_DESCRIPTOR = 1024 * 1024 - 1;
const ALLOWED_CREATE_TYPES = new Set(['monolithicsparse', 'streamoptimized']);
const MARKER_EOS = 0;
const MARKER_FOOTER = 3;

export interface VmdkExtent {
  access: string;
  sectors: bigint;
  type: string;
  filename?: string;
  offset?: bigint;
}

export interface VmdkSparseHeader {
  version: number;
  flags: number;
  capacity: bigint;
  grainSize: bigint;
  descOffset: bigint;
  descSize: bigint;
  numGtesPerGt: number;
  gdOffset: bigint;
  overhead: bigint;
  compressAlgorithm: number;
}

export interface VmdkFooter {
  /** The footer's copy of the header, when the footer is valid. */
  header?: VmdkSparseHeader;
  problems: string[];
}

export interface VmdkInfo {
  kind: 'sparse' | 'descriptor';
  fileSize: number;
  header?: VmdkSparseHeader;
  footer?: VmdkFooter;
  descriptorLength: number;
  descriptorTruncated: boolean;
  descriptorNotText: boolean;
  createType?: string;
  createTypeRaw?: string;
  cid?: string;
  parentCid?: string;
  parentFileNameHint: boolean;
  extents: VmdkExtent[];
  badLines: string[];
  slashExtents: string[];
}

function isTextByte(b: number): boolean {
  return b === 9 || b === 10 || b === 13 || (b >= 0x20 && b <= 0x7e);
}

/** The text-descriptor probe: printable ASCII that starts (after comments/blank lines) with `version=N`
 * as qemu's probe wants, or that names a createType. */
export function looksLikeDescriptor(head: Uint8Array): boolean {
  if (head.length < 4) return false;
  let end = head.length;
  const nul = head.indexOf(0);
  if (nul >= 0) {
    if (!isZero(head.subarray(nul))) return false;
    end = nul;
  }
  if (end === 0) return false;
  for (let i = 0; i < end; i++) if (!isTextByte(head[i]!)) return false;
  const text = latin1(head.subarray(0, end));
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('#') || line.trim() === '') continue;
    if (/^version=[123]$/.test(line)) return true;
    break;
  }
  return /^\s*createtype\s*=/im.test(text);
}

function parseSparseHeader(f: Fields, at = 0): VmdkSparseHeader {
  return {
    version: f.u32le(at + 4),
    flags: f.u32le(at + 8),
    capacity: f.u64le(at + 12),
    grainSize: f.u64le(at + 20),
    descOffset: f.u64le(at + 28),
    descSize: f.u64le(at + 36),
    numGtesPerGt: f.u32le(at + 44),
    gdOffset: f.u64le(at + 56),
    overhead: f.u64le(at + 64),
    compressAlgorithm: f.u16le(at + 77),
  };
}

async function readFooter(reader: BoundedReader, first: VmdkSparseHeader): Promise<VmdkFooter> {
  const problems: string[] = [];
  if (reader.fileSize < 1536 + 512) return { problems: ['file too short for a footer'] };
  const f = new Fields(await reader.readExact(reader.fileSize - 1536, 1536, 'vmdk footer'), 'vmdk footer');
  // Footer marker: u64 value, u32 size 0, u32 type 3, 496 zero bytes.
  if (f.u32le(8) !== 0 || f.u32le(12) !== MARKER_FOOTER) problems.push('footer marker is not (size 0, type 3)');
  if (!isZero(f.slice(16, 496))) problems.push('footer marker padding is not zero');
  // End-of-stream marker: value 0, size 0, type 0, 496 zero bytes.
  if (f.u64le(1024) !== 0n || f.u32le(1032) !== 0 || f.u32le(1036) !== MARKER_EOS) {
    problems.push('end-of-stream marker is not (0, 0, 0)');
  }
  if (!isZero(f.slice(1040, 496))) problems.push('end-of-stream marker padding is not zero');
  if (!f.equals(512, MAGIC)) problems.push('footer header has no KDMV magic');
  const header = parseSparseHeader(f, 512);
  if (header.version !== first.version) problems.push('footer version differs from the header');
  if (header.descOffset !== first.descOffset || header.descSize !== first.descSize) {
    problems.push('footer descriptor location differs from the header');
  }
  if (header.gdOffset === U64_MAX) problems.push('footer gd_offset is also "at end"');
  return problems.length ? { problems } : { header, problems };
}

function parseDescriptor(info: VmdkInfo, raw: string): void {
  const lines = raw.split('\n');
  for (const original of lines) {
    const line = original.trim();
    if (line === '' || line.startsWith('#')) continue;
    const lower = line.toLowerCase();
    const ext = /^(rw|rdonly|noaccess)\s+(\d+)\s+(\S+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?/i.exec(line);
    if (ext) {
      if (line.includes('/')) info.slashExtents.push(line.slice(0, 200));
      if (info.extents.length < 4096) {
        info.extents.push({
          access: ext[1]!.toUpperCase(),
          sectors: BigInt(ext[2]!),
          type: ext[3]!.toUpperCase(),
          ...(ext[4] !== undefined ? { filename: ext[4] } : {}),
          ...(ext[5] !== undefined ? { offset: BigInt(ext[5]) } : {}),
        });
      }
      continue;
    }
    if (lower.startsWith('ddb')) continue;
    const eq = line.indexOf('=');
    if (eq > 0 && !/\s/.test(line.slice(0, eq).trim()) && line.slice(0, eq).trim() !== '') {
      const key = line.slice(0, eq).trim().toLowerCase();
      const value = line
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
      if (key === 'createtype' && info.createTypeRaw === undefined) info.createTypeRaw = value;
      else if (key === 'cid' && info.cid === undefined) info.cid = value;
      else if (key === 'parentcid' && info.parentCid === undefined) info.parentCid = value;
      else if (key === 'parentfilenamehint') info.parentFileNameHint = true;
      continue;
    }
    if (info.badLines.length < 8) info.badLines.push(line.slice(0, 200));
    else info.badLines.length = 8;
  }
  if (info.createTypeRaw !== undefined) info.createType = info.createTypeRaw.toLowerCase();
}

async function parse(reader: BoundedReader, probe: Probe): Promise<VmdkInfo> {
  const info: VmdkInfo = {
    kind: 'sparse',
    fileSize: probe.size,
    descriptorLength: 0,
    descriptorTruncated: false,
    descriptorNotText: false,
    parentFileNameHint: false,
    extents: [],
    badLines: [],
    slashExtents: [],
  };
  let descBytes: Uint8Array;
  if (new Fields(probe.head).equals(0, MAGIC)) {
    const header = parseSparseHeader(new Fields(probe.head.subarray(0, 512), 'vmdk header'));
    info.header = header;
    if (header.gdOffset === U64_MAX) info.footer = await readFooter(reader, header);
    // qemu always takes the embedded descriptor from 0x200; read at most 1 MiB − 1 of it.
    const want = header.descSize * 512n;
    const n = Number(want > BigInt(VMDK_MAX_DESCRIPTOR) ? BigInt(VMDK_MAX_DESCRIPTOR) : want);
    descBytes = await reader.read(0x200, n);
  } else {
    info.kind = 'descriptor';
    descBytes = await reader.read(0, Math.min(probe.size, VMDK_MAX_DESCRIPTOR));
    info.descriptorTruncated = probe.size > VMDK_MAX_DESCRIPTOR;
    let end = descBytes.indexOf(0);
    if (end < 0) end = descBytes.length;
    else if (!isZero(descBytes.subarray(end))) info.descriptorNotText = true;
    for (let i = 0; i < end; i++) {
      if (!isTextByte(descBytes[i]!)) {
        info.descriptorNotText = true;
        break;
      }
    }
  }
  let end = descBytes.indexOf(0);
  if (end < 0) end = descBytes.length;
  info.descriptorLength = end;
  parseDescriptor(info, latin1(descBytes.subarray(0, end)));
  return info;
}

/** The header qemu uses: the footer's copy when the grain directory is at the end. */
function effectiveHeader(v: VmdkInfo): VmdkSparseHeader | undefined {
  if (!v.header) return undefined;
  if (v.header.gdOffset === U64_MAX) return v.footer?.header;
  return v.header;
}

function virtualSize(v: VmdkInfo): bigint | undefined {
  if (v.kind === 'sparse') {
    const h = effectiveHeader(v);
    return h ? h.capacity * 512n : undefined;
  }
  let total = 0n;
  for (const e of v.extents) total += e.sectors * 512n;
  return total;
}

function headerProblem(v: VmdkInfo): string | undefined {
  const h = effectiveHeader(v);
  if (!h) return undefined;
  if (h.grainSize === 0n || h.grainSize > 0x200000n) return `grain size ${h.grainSize} sectors is invalid`;
  if (h.numGtesPerGt === 0 || h.numGtesPerGt > 512) return `num_gtes_per_gt ${h.numGtesPerGt} outside 1..512`;
  const l1Entry = BigInt(h.numGtesPerGt) * h.grainSize;
  const l1Size = (h.capacity + l1Entry - 1n) / l1Entry;
  if (l1Size > (512n * 1024n * 1024n) / 4n) return 'L1 table too big';
  if (h.overhead * 512n > BigInt(v.fileSize)) return `file truncated: grain data starts at sector ${h.overhead}`;
  return undefined;
}

export const vmdk = defineFormat<VmdkInfo>({
  format: 'vmdk',
  reportAs: 'vmdk',
  detect: (p) => new Fields(p.head).equals(0, MAGIC) || looksLikeDescriptor(p.head.subarray(0, PROBE_HEAD)),
  parse,
  virtualSize,
  details: (v) => {
    const h = effectiveHeader(v);
    return {
      subformat: v.kind,
      createType: v.createTypeRaw,
      version: v.header?.version,
      flags: v.header?.flags,
      compressed: v.header ? Boolean(v.header.flags & 0x10000) : undefined,
      clusterSize: h ? u64Detail(h.grainSize * 512n) : undefined,
      capacitySectors: h ? u64Detail(h.capacity) : undefined,
      descriptorOffset: v.header ? u64Detail(v.header.descOffset * 512n) : 0,
      descriptorLength: v.descriptorLength,
      gdAtEnd: v.header ? v.header.gdOffset === U64_MAX : undefined,
      footerValid: v.footer ? v.footer.header !== undefined : undefined,
      cid: v.cid,
      parentCid: v.parentCid,
      extents: v.extents.slice(0, 64).map((e) => ({
        access: e.access,
        sectors: u64Detail(e.sectors),
        type: e.type,
        filename: e.filename,
        offset: e.offset === undefined ? undefined : u64Detail(e.offset),
      })),
    };
  },
  checks: [
    {
      id: 'vmdk-version',
      message: (v) => `unsupported VMDK sparse header version ${v.header?.version}`,
      fails: (v) => v.header !== undefined && (v.header.version < 1 || v.header.version > 3),
    },
    {
      id: 'vmdk-header-fields',
      message: (v) => `invalid sparse header: ${headerProblem(v)}`,
      fails: (v) => headerProblem(v) !== undefined,
    },
    {
      id: 'vmdk-descriptor-location',
      message: (v) => `embedded descriptor at sector ${v.header?.descOffset}, not at 0x200`,
      fails: (v) => v.header !== undefined && v.header.descOffset !== 1n,
    },
    {
      id: 'vmdk-descriptor-size',
      message: 'descriptor larger than 1 MiB',
      fails: (v) => v.descriptorTruncated || (v.header !== undefined && v.header.descSize * 512n > 1024n * 1024n),
    },
    {
      id: 'vmdk-descriptor-text',
      message: 'descriptor file is not printable ASCII',
      fails: (v) => v.descriptorNotText,
    },
    {
      id: 'vmdk-create-type',
      message: (v) =>
        v.createTypeRaw === undefined
          ? 'descriptor has no createType'
          : `unsupported VMDK subformat ${JSON.stringify(v.createTypeRaw.slice(0, 64))}`,
      fails: (v) => v.createType === undefined || v.createType.length > 63 || !ALLOWED_CREATE_TYPES.has(v.createType),
    },
    {
      id: 'vmdk-descriptor-grammar',
      message: (v) => `unexpected descriptor line ${JSON.stringify(v.badLines[0])}`,
      fails: (v) => v.badLines.length > 0,
    },
    { id: 'vmdk-no-extents', message: 'descriptor has no extent', fails: (v) => v.extents.length === 0 },
    {
      id: 'vmdk-extent-path',
      message: (v) => `extent names a path: ${JSON.stringify(v.slashExtents[0])}`,
      fails: (v) => v.slashExtents.length > 0,
    },
    {
      id: 'vmdk-parent',
      message: 'descriptor names a parent image (parentFileNameHint)',
      fails: (v) => v.parentFileNameHint,
    },
    {
      id: 'vmdk-footer',
      message: (v) => `invalid streamOptimized footer: ${v.footer?.problems.join('; ')}`,
      fails: (v) => v.footer !== undefined && v.footer.header === undefined,
    },
  ],
});
