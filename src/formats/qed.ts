/**
 * QED (qemu `block/qed.c`), little-endian: detected only, always refused — no service supports it and it
 * could otherwise be handed to qemu-img (check 10).
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields } from './fields.js';
import { roundDown512, u64Detail } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

export interface QedHeader {
  clusterSize: number;
  features: bigint;
  imageSize: bigint;
  backingFilenameSize: number;
}

function parse(_reader: BoundedReader, probe: Probe): QedHeader {
  const f = new Fields(probe.head.subarray(0, 64), 'qed header');
  return { clusterSize: f.u32le(4), features: f.u64le(16), imageSize: f.u64le(48), backingFilenameSize: f.u32le(60) };
}

export const qed = defineFormat<QedHeader>({
  format: 'qed',
  reportAs: 'qed',
  detect: (p) => new Fields(p.head).equals(0, 'QED\0'),
  parse,
  virtualSize: (h) => roundDown512(h.imageSize),
  details: (h) => ({
    clusterSize: h.clusterSize,
    imageSize: u64Detail(h.imageSize),
    hasBackingFile: Boolean(h.features & 1n),
  }),
  checks: [{ id: 'qed-unsupported', message: 'QED images are not accepted', fails: () => true }],
});
