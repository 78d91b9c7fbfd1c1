/**
 * ISO 9660 (and UDF's NSR02/NSR03 recognition). qemu has no ISO driver: it reads the file as raw, so the
 * virtual size is the file length rounded up to 512. The volume descriptor gives the declared volume size.
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, latin1 } from './fields.js';
import { defineFormat, rawVirtualSize, type Probe } from './format.js';

export interface IsoInfo {
  fileSize: number;
  standard: 'iso9660' | 'udf';
  blocks?: number;
  blocksBe?: number;
  blockSize?: number;
  blockSizeBe?: number;
  volumeId?: string;
  systemId?: string;
}

function udfAt(area: Uint8Array): boolean {
  const f = new Fields(area);
  for (const off of [0x001, 0x801, 0x1001]) if (f.equals(off, 'NSR02') || f.equals(off, 'NSR03')) return true;
  return false;
}

function parse(_reader: BoundedReader, probe: Probe): IsoInfo {
  const all = new Fields(probe.isoArea, 'iso volume descriptor');
  // The primary volume descriptor (type 1) is normally the first one, at 0x8000.
  const at = [0, 0x800, 0x1000].find((o) => all.equals(o + 1, 'CD001') && probe.isoArea[o] === 1);
  if (at === undefined) return { fileSize: probe.size, standard: all.equals(1, 'CD001') ? 'iso9660' : 'udf' };
  const f = new Fields(probe.isoArea.subarray(at, at + 0x800), 'iso primary volume descriptor');
  return {
    fileSize: probe.size,
    standard: 'iso9660',
    blocks: f.u32le(80),
    blocksBe: f.u32be(84),
    blockSize: f.u16le(128),
    blockSizeBe: f.u16be(130),
    volumeId: latin1(f.slice(40, 32)).trim(),
    systemId: latin1(f.slice(8, 32)).trim(),
  };
}

export const iso = defineFormat<IsoInfo>({
  format: 'iso',
  reportAs: 'iso',
  detect: (p) => new Fields(p.isoArea).equals(1, 'CD001') || udfAt(p.isoArea),
  parse,
  virtualSize: (h) => rawVirtualSize(h.fileSize),
  details: (h) => ({
    standard: h.standard,
    volumeBlocks: h.blocks,
    logicalBlockSize: h.blockSize,
    volumeSize: h.blocks !== undefined && h.blockSize !== undefined ? h.blocks * h.blockSize : undefined,
    volumeId: h.volumeId,
    systemId: h.systemId,
  }),
  checks: [
    {
      id: 'iso-descriptor',
      message: 'primary volume descriptor: little- and big-endian copies disagree',
      fails: (h) => h.standard === 'iso9660' && (h.blocks !== h.blocksBe || h.blockSize !== h.blockSizeBe),
    },
  ],
});
