/**
 * The format inspector: bytes → format, qemu-img-exact virtual size, details, safety verdict.
 *
 * Pure and bounded: it reads a few regions through a budgeted reader (default 4 MiB in total), never
 * allocates from a length field without a cap, computes 64-bit products with BigInt, and rejects only with
 * InspectError.
 *
 * Decisions:
 * - GPT/MBR disks are reported as format `raw` (qemu treats them as raw) with `details.partitionTable`
 *   = 'gpt' | 'mbr'; `details.matched` lists every signature that matched (e.g. ['iso', 'gpt']).
 * - ISO images report format `iso` (qemu: raw, virtual size = length rounded up to 512).
 * - LUKS1 passes the safety checks (qemu's luks driver exposes the payload as raw; the header names no file);
 *   LUKS2 and anything else is refused. QED is always refused.
 * - More than one format matching is refused (`multiple-formats`), except ISO + GPT/MBR (hybrid ISO,
 *   reported as iso) and a fixed VHD (footer at the end only) whose disk content carries an MBR/GPT.
 * - Virtual sizes above `maxVirtualSize` (default 64 TiB, the VHDX maximum) are refused
 *   (`virtual-size-limit`); a size beyond 2^53−1 is reported approximately in `virtualSize` and exactly in
 *   `details.virtualSizeExact`.
 * - A header cut short by the end of the file is a safety failure `<format>-truncated` (virtualSize 0), not
 *   an exception.
 */
import type { ByteSource } from './byte-source.js';
import { BoundedReader } from './bounded-reader.js';
import { InspectError, TruncatedError } from './errors.js';
import { hasMagic } from './fields.js';
import {
  type AnyFormatModule,
  type ImageFormat,
  ISO_AREA_LENGTH,
  ISO_AREA_OFFSET,
  PROBE_HEAD,
  type Probe,
  rawVirtualSize,
  type SafetyFailure,
} from './format.js';
import { gpt, mbr } from './partition.js';
import { iso } from './iso.js';
import { luks } from './luks.js';
import { qcow2 } from './qcow2.js';
import { qed } from './qed.js';
import { vdi } from './vdi.js';
import { vhd } from './vhd.js';
import { vhdx } from './vhdx.js';
import { vmdk } from './vmdk.js';

export type { ImageFormat, SafetyFailure } from './format.js';
export { InspectError } from './errors.js';
export type { InspectErrorCode } from './errors.js';

export interface InspectResult {
  /** Detected format; 'raw' is the fallback (and what GPT/MBR disks report). */
  format: ImageFormat;
  /** qemu-img 7.2's `virtual-size`, exactly (0 when qemu could not open the image). */
  virtualSize: number;
  details: Record<string, unknown>;
  safety: { ok: boolean; failures: SafetyFailure[] };
  /** Total bytes read through the source. */
  bytesRead: number;
}

export interface InspectOptions {
  /** Maximum total bytes read from the source; default 4 MiB. Exceeding it rejects with BUDGET_EXCEEDED. */
  budgetBytes?: number;
  /** Largest acceptable virtual size; default 64 TiB. Larger images get a `virtual-size-limit` failure. */
  maxVirtualSize?: number;
}

export const DEFAULT_BUDGET_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_VIRTUAL_SIZE = 64 * 1024 ** 4;

/** Detection priority: formats with a magic at offset 0 first (qemu's probe order), then the rest. */
export const FORMAT_MODULES: readonly AnyFormatModule[] = [qcow2, qed, vmdk, vhdx, vdi, luks, vhd, iso, gpt, mbr];

/** qemu's names, for `qemu-img info -f`. */
export function qemuFormatName(format: ImageFormat): string {
  switch (format) {
    case 'vhd':
      return 'vpc';
    case 'iso':
    case 'gpt':
    case 'mbr':
      return 'raw';
    default:
      return format;
  }
}

function checkOptions(opts: InspectOptions): { budget: number; maxVirtualSize: number } {
  const budget = opts.budgetBytes ?? DEFAULT_BUDGET_BYTES;
  const maxVirtualSize = opts.maxVirtualSize ?? DEFAULT_MAX_VIRTUAL_SIZE;
  if (!Number.isSafeInteger(budget) || budget < 0) throw new InspectError('BAD_OPTIONS', `bad budgetBytes ${budget}`);
  if (!Number.isSafeInteger(maxVirtualSize) || maxVirtualSize < 0) {
    throw new InspectError('BAD_OPTIONS', `bad maxVirtualSize ${maxVirtualSize}`);
  }
  return { budget, maxVirtualSize };
}

async function sourceSize(source: ByteSource): Promise<number> {
  let size: unknown;
  try {
    size = await source.size();
  } catch (err) {
    throw new InspectError('READ_FAILED', `could not get the source size: ${String(err)}`, { cause: err });
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InspectError('BAD_SOURCE', `source size ${String(size)} is not a non-negative safe integer`);
  }
  return size;
}

async function readProbe(reader: BoundedReader, size: number): Promise<Probe> {
  const headLen = Math.min(size, PROBE_HEAD);
  const empty = Promise.resolve(new Uint8Array(0));
  // Three independent regions: read them concurrently (one round trip on asynchronous sources).
  const [head, tailRead, isoArea] = await Promise.all([
    reader.read(0, headLen),
    size > headLen ? reader.read(Math.max(headLen, size - 512), Math.min(512, size - headLen)) : empty,
    size > ISO_AREA_OFFSET ? reader.read(ISO_AREA_OFFSET, ISO_AREA_LENGTH) : empty,
  ]);
  let tail = head.subarray(Math.max(0, head.length - 512));
  if (size > headLen) {
    const missing = 512 - tailRead.length;
    tail = new Uint8Array(512);
    tail.set(head.subarray(head.length - missing), 0);
    tail.set(tailRead, missing);
  }
  if (
    head.length !== headLen ||
    tail.length !== Math.min(size, 512) ||
    (size > headLen && tailRead.length !== Math.min(512, size - headLen))
  ) {
    throw new InspectError('BAD_SOURCE', 'source returned fewer bytes than its size promises');
  }
  return { size, head, tail, isoArea };
}

/** Which simultaneous matches are legitimate (see the module comment). */
function multipleAllowed(matched: ImageFormat[], probe: Probe): boolean {
  if (matched.length <= 1) return true;
  const rest = matched.filter((f) => f !== 'gpt' && f !== 'mbr');
  if (rest.length !== 1) return false;
  if (rest[0] === 'iso') return true;
  return rest[0] === 'vhd' && !hasMagic(probe.head, 0, 'conectix');
}

function clean(d: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) if (v !== undefined) out[k] = v;
  return out;
}

async function run(source: ByteSource, opts: InspectOptions): Promise<InspectResult> {
  const { budget, maxVirtualSize } = checkOptions(opts);
  const size = await sourceSize(source);
  const reader = new BoundedReader(source, size, budget);
  const probe = await readProbe(reader, size);
  const modules = FORMAT_MODULES.filter((m) => m.detect(probe));
  const matched = modules.map((m) => m.format);
  const failures: SafetyFailure[] = [];
  const primary = modules[0];
  let format: ImageFormat = 'raw';
  let vsize: bigint | undefined = rawVirtualSize(size);
  let details: Record<string, unknown> = {};

  if (primary) {
    format = primary.reportAs;
    let parsed: unknown;
    let truncated = false;
    try {
      parsed = await primary.parse(reader, probe);
    } catch (err) {
      if (!(err instanceof TruncatedError)) throw err;
      truncated = true;
      failures.push({ check: `${primary.format}-truncated`, message: `${primary.format} header truncated: ${err.message}` });
    }
    if (truncated) {
      vsize = undefined;
      details = { truncated: true };
    } else {
      vsize = primary.virtualSize(parsed);
      details = clean(primary.details(parsed));
      for (const c of primary.checks) {
        if (c.fails(parsed)) failures.push({ check: c.id, message: typeof c.message === 'string' ? c.message : c.message(parsed) });
      }
    }
    if (!multipleAllowed(matched, probe)) {
      failures.push({ check: 'multiple-formats', message: `content matches several formats: ${matched.join(', ')}` });
    }
  }
  details = { ...details, matched };
  let virtualSize = 0;
  if (vsize === undefined) {
    if (failures.length === 0) {
      failures.push({ check: 'virtual-size-unknown', message: 'the virtual size cannot be determined' });
    }
  } else {
    virtualSize = Number(vsize);
    if (!Number.isSafeInteger(virtualSize)) details.virtualSizeExact = vsize.toString();
    if (vsize > BigInt(maxVirtualSize)) {
      failures.push({
        check: 'virtual-size-limit',
        message: `virtual size ${vsize} exceeds the limit of ${maxVirtualSize} bytes`,
      });
    }
  }
  return { format, virtualSize, details, safety: { ok: failures.length === 0, failures }, bytesRead: reader.bytesRead };
}

/**
 * Inspects an image through `source`. Resolves with the verdict; rejects only with InspectError (budget
 * exceeded, read failure, misbehaving source, bad options).
 */
export async function inspect(source: ByteSource, opts: InspectOptions = {}): Promise<InspectResult> {
  try {
    return await run(source, opts);
  } catch (err) {
    if (err instanceof InspectError) throw err;
    throw new InspectError('INTERNAL', `inspection failed: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
