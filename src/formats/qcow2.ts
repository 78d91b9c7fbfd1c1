/**
 * qcow2 v2/v3 (`docs/interop/qcow2.rst`, qemu `block/qcow2.c`), big-endian header at offset 0.
 * Virtual size: the header's `size` rounded down to 512 (qemu keeps 512-byte sectors).
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, latin1 } from './fields.js';
import { roundDown512, u64Detail } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

const MAGIC = 'QFI\xfb';
const INCOMPAT_DIRTY = 1n;
const INCOMPAT_CORRUPT = 2n;
const INCOMPAT_DATA_FILE = 4n;
const INCOMPAT_COMPRESSION = 8n;
const INCOMPAT_EXTL2 = 16n;
/** Bits a v3 reader may accept (check 3: dirty, corrupt, data file, compression type). */
const INCOMPAT_ALLOWED = 0xfn;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_TABLE = 0x6803f857;
const EXT_BITMAPS = 0x23852875;
const EXT_CRYPTO = 0x0537be77;
const EXT_DATA_FILE = 0x44415441;
/** qemu's QCOW_MAX_L1_SIZE (32 MiB) in 8-byte entries. */
const MAX_L1_ENTRIES = (32 * 1024 * 1024) / 8;
const MAX_EXTENSIONS = 256;

export interface Qcow2Header {
  version: number;
  backingFileOffset: bigint;
  backingFileSize: number;
  clusterBits: number;
  size: bigint;
  cryptMethod: number;
  l1Size: number;
  nbSnapshots: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  extensionTypes: number[];
  hasBitmapsExt: boolean;
  hasCryptoExt: boolean;
}

const clusterBitsValid = (h: Qcow2Header) => h.clusterBits >= 9 && h.clusterBits <= 21;
const clusterSize = (h: Qcow2Header) => 2 ** h.clusterBits;

/** qemu's l1_vm_state_index: L1 entries needed to map `size`. */
function l1Needed(h: Qcow2Header): bigint {
  const l2Bits = h.clusterBits - (h.incompatible & INCOMPAT_EXTL2 ? 4 : 3);
  const shift = BigInt(h.clusterBits + l2Bits);
  const span = 1n << shift;
  return (h.size + span - 1n) / span;
}

async function parse(reader: BoundedReader, probe: Probe): Promise<Qcow2Header> {
  const f = new Fields(probe.head.subarray(0, Math.min(probe.head.length, 112)), 'qcow2 header');
  const version = f.u32be(4);
  const h: Qcow2Header = {
    version,
    backingFileOffset: f.u64be(8),
    backingFileSize: f.u32be(16),
    clusterBits: f.u32be(20),
    size: f.u64be(24),
    cryptMethod: f.u32be(32),
    l1Size: f.u32be(36),
    nbSnapshots: f.u32be(60),
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: 72,
    compressionType: 0,
    extensionTypes: [],
    hasBitmapsExt: false,
    hasCryptoExt: false,
  };
  f.u64be(64); // the v2 header is 72 bytes: insist on all of it
  if (version >= 3) {
    h.incompatible = f.u64be(72);
    h.compatible = f.u64be(80);
    h.autoclear = f.u64be(88);
    h.refcountOrder = f.u32be(96);
    h.headerLength = f.u32be(100);
    if (h.headerLength > 104) h.compressionType = f.u8(104);
  }
  if (version < 2 || version > 3 || !clusterBitsValid(h)) return h;
  const cs = clusterSize(h);
  if (version === 3 && (h.headerLength < 104 || h.headerLength > cs)) return h;

  // Header extensions: between the header and the backing file name (or the end of cluster 0).
  let end = BigInt(cs);
  if (h.backingFileOffset !== 0n && h.backingFileOffset < end) end = h.backingFileOffset;
  let off = h.headerLength;
  for (let i = 0; i < MAX_EXTENSIONS && BigInt(off) + 8n <= end; i++) {
    const eh = await reader.read(off, 8);
    if (eh.length < 8) break;
    const ef = new Fields(eh);
    const type = ef.u32be(0);
    const len = ef.u32be(4);
    if (type === 0) break;
    h.extensionTypes.push(type);
    const dataOff = off + 8;
    if (BigInt(dataOff) + BigInt(len) > end) break; // qemu: "ext_end exceeded" — stop, never allocate from len
    const capped = Math.min(len, 1023);
    if (type === EXT_BACKING_FORMAT) h.backingFormat = latin1(await reader.read(dataOff, Math.min(capped, 32)));
    else if (type === EXT_DATA_FILE) h.dataFile = latin1(await reader.read(dataOff, capped));
    else if (type === EXT_BITMAPS) h.hasBitmapsExt = true;
    else if (type === EXT_CRYPTO) h.hasCryptoExt = true;
    else if (type === EXT_FEATURE_TABLE) {
      /* names of features: informational only */
    }
    off = dataOff + Math.ceil(len / 8) * 8;
  }
  if (h.backingFileOffset !== 0n && h.backingFileSize > 0) {
    const n = Math.min(h.backingFileSize, 1023);
    const name = await reader.read(h.backingFileOffset, n);
    h.backingFile = Buffer.from(name).toString('utf8');
  }
  return h;
}

const compressionName = (t: number) => (t === 0 ? 'zlib' : t === 1 ? 'zstd' : `unknown(${t})`);
const cryptName = (c: number) => (c === 0 ? 'none' : c === 1 ? 'aes' : c === 2 ? 'luks' : `unknown(${c})`);

export const qcow2 = defineFormat<Qcow2Header>({
  format: 'qcow2',
  reportAs: 'qcow2',
  detect: (p) => new Fields(p.head).equals(0, MAGIC),
  parse,
  virtualSize: (h) => roundDown512(h.size),
  details: (h) => ({
    version: h.version,
    compat: h.version === 2 ? '0.10' : h.version === 3 ? '1.1' : undefined,
    clusterBits: h.clusterBits,
    clusterSize: clusterBitsValid(h) ? clusterSize(h) : undefined,
    headerLength: h.headerLength,
    backingFile: h.backingFile ?? (h.backingFileOffset !== 0n ? '' : undefined),
    backingFileOffset: u64Detail(h.backingFileOffset),
    backingFileFormat: h.backingFormat,
    dataFile: h.dataFile,
    dataFileRaw: h.incompatible & INCOMPAT_DATA_FILE ? Boolean(h.autoclear & 2n) : undefined,
    encrypted: h.cryptMethod !== 0,
    cryptMethod: cryptName(h.cryptMethod),
    compressionType: compressionName(h.compressionType),
    dirty: Boolean(h.incompatible & INCOMPAT_DIRTY),
    corrupt: Boolean(h.incompatible & INCOMPAT_CORRUPT),
    extendedL2: Boolean(h.incompatible & INCOMPAT_EXTL2),
    lazyRefcounts: Boolean(h.compatible & 1n),
    bitmaps: Boolean(h.autoclear & 1n) || h.hasBitmapsExt,
    refcountBits: h.refcountOrder < 32 ? 2 ** h.refcountOrder : undefined,
    incompatibleFeatures: '0x' + h.incompatible.toString(16),
    l1Size: h.l1Size,
    snapshots: h.nbSnapshots,
    extensions: h.extensionTypes.map((t) => '0x' + t.toString(16).padStart(8, '0')),
  }),
  checks: [
    {
      id: 'qcow2-version',
      message: (h) => `unsupported qcow2 version ${h.version} (only 2 and 3)`,
      fails: (h) => h.version !== 2 && h.version !== 3,
    },
    { id: 'qcow2-cluster-bits', message: (h) => `cluster_bits ${h.clusterBits} outside 9..21`, fails: (h) => !clusterBitsValid(h) },
    {
      id: 'qcow2-header-length',
      message: (h) => `header_length ${h.headerLength} outside [104, cluster size]`,
      fails: (h) => h.version === 3 && (h.headerLength < 104 || (clusterBitsValid(h) && h.headerLength > clusterSize(h))),
    },
    {
      id: 'qcow2-backing-file',
      message: (h) => `image has a backing file${h.backingFile ? ` (${JSON.stringify(h.backingFile)})` : ''}`,
      fails: (h) => h.backingFileOffset !== 0n,
    },
    {
      id: 'qcow2-backing-file-size',
      message: 'backing file name longer than 1023 bytes or beyond the first cluster',
      fails: (h) =>
        h.backingFileOffset !== 0n &&
        (h.backingFileSize > 1023 || (clusterBitsValid(h) && h.backingFileOffset + BigInt(h.backingFileSize) > BigInt(clusterSize(h)))),
    },
    {
      id: 'qcow2-data-file',
      message: 'image uses an external data file',
      fails: (h) => Boolean(h.incompatible & INCOMPAT_DATA_FILE) || h.dataFile !== undefined,
    },
    {
      id: 'qcow2-unknown-features',
      message: (h) => `unsupported incompatible feature bits 0x${(h.incompatible & ~INCOMPAT_ALLOWED).toString(16)}`,
      fails: (h) => (h.incompatible & ~INCOMPAT_ALLOWED) !== 0n,
    },
    {
      id: 'qcow2-encryption',
      message: (h) => `encryption method ${cryptName(h.cryptMethod)} is not supported (legacy AES is refused by qemu)`,
      fails: (h) => h.cryptMethod !== 0 && h.cryptMethod !== 2,
    },
    {
      id: 'qcow2-compression-type',
      message: (h) => `compression type ${h.compressionType} inconsistent with incompatible bit 3`,
      fails: (h) => h.compressionType > 1 || (h.compressionType !== 0) !== Boolean(h.incompatible & INCOMPAT_COMPRESSION),
    },
    { id: 'qcow2-refcount-order', message: (h) => `refcount_order ${h.refcountOrder} > 6`, fails: (h) => h.refcountOrder > 6 },
    {
      id: 'qcow2-l1-table',
      message: (h) => `L1 table of ${h.l1Size} entries cannot map ${h.size} bytes (or exceeds 32 MiB)`,
      fails: (h) => clusterBitsValid(h) && (h.l1Size > MAX_L1_ENTRIES || l1Needed(h) > 0x7fffffffn || BigInt(h.l1Size) < l1Needed(h)),
    },
  ],
});
