/**
 * The shape every format module has: detection on a few probed regions, a bounded parse, qemu's virtual
 * size, details, and safety checks declared as data.
 */
import type { BoundedReader } from './bounded-reader.js';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi' | 'iso' | 'qed' | 'luks' | 'gpt' | 'mbr';

export interface SafetyFailure {
  /** Short stable id, e.g. `qcow2-backing-file`. */
  check: string;
  message: string;
}

/** A safety check declared as data: `fails(parsed)` true means the image is refused. */
export interface SafetyCheck<H> {
  readonly id: string;
  readonly message: string | ((h: H) => string);
  readonly fails: (h: H) => boolean;
}

/** Bytes read once, up front, that detection works on. */
export interface Probe {
  /** File length. */
  readonly size: number;
  /** The first `min(size, PROBE_HEAD)` bytes. */
  readonly head: Uint8Array;
  /** The last `min(size, 512)` bytes. */
  readonly tail: Uint8Array;
  /** Bytes 0x8000 up to 0x9800 (ISO 9660 / UDF volume descriptors), possibly short or empty. */
  readonly isoArea: Uint8Array;
}

export const PROBE_HEAD = 8192;
export const ISO_AREA_OFFSET = 0x8000;
export const ISO_AREA_LENGTH = 0x1800;

export interface FormatModule<H> {
  /** The name detection reports (what matched). */
  readonly format: ImageFormat;
  /** The format `InspectResult.format` reports when this module wins (gpt/mbr → raw). */
  readonly reportAs: ImageFormat;
  /** Signature test on the probed regions only: cheap, no reads. */
  detect(probe: Probe): boolean;
  /** Reads what the format needs through the bounded reader (or only the probe: then synchronously). May throw TruncatedError. */
  parse(reader: BoundedReader, probe: Probe): H | Promise<H>;
  /** qemu 7.2's virtual size in bytes; undefined when qemu could not compute one (it would refuse). */
  virtualSize(h: H): bigint | undefined;
  details(h: H): Record<string, unknown>;
  readonly checks: readonly SafetyCheck<H>[];
}

/** Erases the header type so modules can sit in one registry. */
export type AnyFormatModule = FormatModule<unknown>;
export function defineFormat<H>(m: FormatModule<H>): AnyFormatModule {
  return m as unknown as AnyFormatModule;
}

/** Raw semantics (qemu file driver): length rounded up to a multiple of 512. */
export function rawVirtualSize(size: number): bigint {
  return ((BigInt(size) + 511n) / 512n) * 512n;
}
