import type { ByteSource } from './byte-source.js';
import { InspectError, TruncatedError } from './errors.js';

/**
 * Every read of a format module goes through here: clamped to the file, charged against the budget,
 * served from already-read regions when possible, and guarded against misbehaving sources.
 */
export class BoundedReader {
  private readonly cache: { offset: number; data: Uint8Array }[] = [];
  private consumed = 0;

  constructor(
    private readonly source: ByteSource,
    readonly fileSize: number,
    readonly budget: number,
  ) {}

  get bytesRead(): number {
    return this.consumed;
  }

  /** Remaining budget in bytes. */
  get remaining(): number {
    return this.budget - this.consumed;
  }

  /**
   * Reads up to `length` bytes at `offset` (bigint offsets from headers are accepted). Returns fewer bytes
   * only at the end of the file; an empty array when `offset` is at or past the end.
   */
  async read(offset: number | bigint, length: number): Promise<Uint8Array> {
    if (typeof offset === 'bigint') {
      if (offset < 0n || offset >= BigInt(this.fileSize)) return new Uint8Array(0);
      offset = Number(offset);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InspectError('INTERNAL', `bad read request ${offset}+${length}`);
    }
    if (offset >= this.fileSize || length === 0) return new Uint8Array(0);
    const want = Math.min(length, this.fileSize - offset);
    for (const c of this.cache) {
      const cEnd = c.offset + c.data.length;
      if (offset >= c.offset && offset < cEnd) {
        const have = c.data.subarray(offset - c.offset, Math.min(cEnd, offset + want) - c.offset);
        if (have.length === want) return have;
        // Starts inside an already-read region: fetch only the remainder.
        const rest = await this.read(cEnd, want - have.length);
        const out = new Uint8Array(have.length + rest.length);
        out.set(have, 0);
        out.set(rest, have.length);
        return out;
      }
    }
    if (this.consumed + want > this.budget) {
      throw new InspectError(
        'BUDGET_EXCEEDED',
        `reading ${want} bytes at ${offset} would exceed the inspection budget of ${this.budget} bytes`,
      );
    }
    this.consumed += want;
    let got: Uint8Array;
    try {
      got = await this.source.read(offset, want);
    } catch (err) {
      throw new InspectError('READ_FAILED', `read of ${want} bytes at ${offset} failed: ${String(err)}`, {
        cause: err,
      });
    }
    if (!(got instanceof Uint8Array)) throw new InspectError('BAD_SOURCE', 'source returned a non-Uint8Array');
    if (got.length > want) {
      throw new InspectError('BAD_SOURCE', `source returned ${got.length} bytes for a ${want}-byte read`);
    }
    // Kept as returned (no copy): a source hands over the bytes it returns and must not reuse that memory.
    const data = got;
    this.cache.push({ offset, data });
    return data;
  }

  /** Like read(), but the whole range must be present; otherwise TruncatedError. */
  async readExact(offset: number | bigint, length: number, what: string): Promise<Uint8Array> {
    const data = await this.read(offset, length);
    if (data.length !== length) {
      throw new TruncatedError(`${what}: wanted ${length} bytes at ${String(offset)}, file has ${data.length}`);
    }
    return data;
  }
}
