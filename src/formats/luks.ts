/**
 * LUKS (big-endian header at 0). qemu's `luks` driver supports LUKS1 only and exposes the payload as a raw
 * disk: virtual size = file length − payload_offset × 512, rounded up to 512.
 *
 * Policy: a LUKS1 image passes (its header cannot name another file and qemu reads the decrypted payload as
 * raw); any other version is refused. The content is not inspected (no passphrase).
 */
import type { BoundedReader } from './bounded-reader.js';
import { Fields, latin1 } from './fields.js';
import { roundUp512 } from './numbers.js';
import { defineFormat, type Probe } from './format.js';

export interface LuksHeader {
  fileSize: number;
  version: number;
  cipherName?: string;
  cipherMode?: string;
  hashSpec?: string;
  payloadOffset?: number;
  keyBytes?: number;
  uuid?: string;
  activeSlots?: number;
}

function parse(_reader: BoundedReader, probe: Probe): LuksHeader {
  const f = new Fields(probe.head, 'luks header');
  const h: LuksHeader = { fileSize: probe.size, version: f.u16be(6) };
  if (h.version !== 1) return h;
  h.cipherName = latin1(f.slice(8, 32));
  h.cipherMode = latin1(f.slice(40, 32));
  h.hashSpec = latin1(f.slice(72, 32));
  h.payloadOffset = f.u32be(104);
  h.keyBytes = f.u32be(108);
  h.uuid = latin1(f.slice(168, 40));
  let active = 0;
  for (let i = 0; i < 8; i++) if (f.u32be(208 + i * 48) === 0x00ac71f3) active++;
  h.activeSlots = active;
  return h;
}

const payloadBytes = (h: LuksHeader) => BigInt(h.payloadOffset ?? 0) * 512n;

export const luks = defineFormat<LuksHeader>({
  format: 'luks',
  reportAs: 'luks',
  detect: (p) => new Fields(p.head).equals(0, 'LUKS\xba\xbe'),
  parse,
  virtualSize: (h) => {
    if (h.version !== 1 || h.payloadOffset === undefined) return undefined;
    const len = BigInt(h.fileSize) - payloadBytes(h);
    return len < 0n ? undefined : roundUp512(len);
  },
  details: (h) => ({
    version: h.version,
    cipherName: h.cipherName,
    cipherMode: h.cipherMode,
    hashSpec: h.hashSpec,
    payloadOffset: h.payloadOffset === undefined ? undefined : Number(payloadBytes(h)),
    keyBytes: h.keyBytes,
    uuid: h.uuid,
    activeSlots: h.activeSlots,
  }),
  checks: [
    { id: 'luks-version', message: (h) => `LUKS version ${h.version} is not supported (LUKS1 only)`, fails: (h) => h.version !== 1 },
    {
      id: 'luks-payload',
      message: 'payload offset lies beyond the end of the file',
      fails: (h) => h.version === 1 && payloadBytes(h) > BigInt(h.fileSize),
    },
  ],
});
