/**
 * VDI (VirtualBox, qemu `block/vdi.c`), little-endian header at offset 0, signature 0xBEDA107F at 0x40.
 * Virtual size: `disk_size` rounded UP to a multiple of 512 (qemu accepts VirtualBox's odd sizes).
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, isZero, latin1 } from './fields.js';
import { roundUp512, u64Detail } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

const SIGNATURE = 0xbeda107f;
const VERSION_1_1 = 0x00010001;
const BLOCK_SIZE = 1024 * 1024;
const BLOCKS_IN_IMAGE_MAX = 0x3fffffff;

export interface VdiHeader {
  text: string;
  version: number;
  headerSize: number;
  imageType: number;
  offsetBmap: number;
  offsetData: number;
  sectorSize: number;
  diskSize: bigint;
  blockSize: number;
  blocksInImage: number;
  blocksAllocated: number;
  linkUuidZero: boolean;
  parentUuidZero: boolean;
}

function parse(_reader: BoundedReader, probe: Probe): VdiHeader {
  const f = new Fields(probe.head.subarray(0, 512), 'vdi header');
  return {
    text: latin1(f.slice(0, 64)).replace(/\n$/, ''),
    version: f.u32le(0x44),
    headerSize: f.u32le(0x48),
    imageType: f.u32le(0x4c),
    offsetBmap: f.u32le(0x154),
    offsetData: f.u32le(0x158),
    sectorSize: f.u32le(0x168),
    diskSize: f.u64le(0x170),
    blockSize: f.u32le(0x178),
    blocksInImage: f.u32le(0x180),
    blocksAllocated: f.u32le(0x184),
    linkUuidZero: isZero(f.slice(0x1a8, 16)),
    parentUuidZero: isZero(f.slice(0x1b8, 16)),
  };
}

export const vdi = defineFormat<VdiHeader>({
  format: 'vdi',
  reportAs: 'vdi',
  detect: (p) => p.head.length >= 0x44 && new Fields(p.head).u32le(0x40) === SIGNATURE,
  parse,
  virtualSize: (h) => roundUp512(h.diskSize),
  details: (h) => ({
    text: h.text,
    version: `${h.version >>> 16}.${h.version & 0xffff}`,
    imageType: h.imageType === 1 ? 'dynamic' : h.imageType === 2 ? 'fixed' : h.imageType,
    diskSize: u64Detail(h.diskSize),
    blockSize: h.blockSize,
    clusterSize: h.blockSize,
    blocksInImage: h.blocksInImage,
    blocksAllocated: h.blocksAllocated,
    offsetBmap: h.offsetBmap,
    offsetData: h.offsetData,
  }),
  checks: [
    { id: 'vdi-version', message: (h) => `unsupported VDI version 0x${h.version.toString(16)}`, fails: (h) => h.version !== VERSION_1_1 },
    {
      id: 'vdi-offsets',
      message: 'block map or data offset not aligned to 512',
      fails: (h) => h.offsetBmap % 512 !== 0 || h.offsetData % 512 !== 0,
    },
    { id: 'vdi-sector-size', message: (h) => `sector size ${h.sectorSize} is not 512`, fails: (h) => h.sectorSize !== 512 },
    { id: 'vdi-block-size', message: (h) => `block size ${h.blockSize} is not 1 MiB`, fails: (h) => h.blockSize !== BLOCK_SIZE },
    {
      id: 'vdi-blocks',
      message: (h) => `disk size ${h.diskSize} does not fit ${h.blocksInImage} blocks (max ${BLOCKS_IN_IMAGE_MAX})`,
      fails: (h) => h.blocksInImage > BLOCKS_IN_IMAGE_MAX || roundUp512(h.diskSize) > BigInt(h.blocksInImage) * BigInt(h.blockSize),
    },
    {
      id: 'vdi-parent',
      message: 'image has a link or parent UUID (differencing VDI)',
      fails: (h) => !h.linkUuidZero || !h.parentUuidZero,
    },
  ],
});
