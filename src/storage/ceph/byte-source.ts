import { StorageError } from '../../lib/errors.js';
import { readableLength } from '../kit/byte-range.js';
import type { OpenByteSource } from '../driver.js';

/** Largest single read asked of the helper. */
export const READ_CHUNK = 4 << 20;

/** What a byte source needs from the driver: bounded reads through an open helper handle. */
export interface HandleReader {
  readAt(handle: number, offset: number, length: number, installPath: string): Promise<Buffer>;
  closeHandle(handle: number): Promise<void>;
}

/** An RBD image opened read-only in the helper; reads are bounded and never past the end. */
export class RbdByteSource implements OpenByteSource {
  private closed = false;
  constructor(
    private readonly driver: HandleReader,
    private readonly handle: number,
    private readonly length: number,
    private readonly name: string,
  ) {}

  async size(): Promise<number> {
    this.assertOpen();
    return this.length;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen();
    const n = readableLength(this.name, offset, length, this.length);
    if (n === 0) return new Uint8Array(0);
    const parts: Buffer[] = [];
    for (let done = 0; done < n;) {
      const b = await this.driver.readAt(this.handle, offset + done, Math.min(READ_CHUNK, n - done), this.name);
      if (b.length === 0) break;
      parts.push(b);
      done += b.length;
    }
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.driver.closeHandle(this.handle);
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('invalid', `image ${this.name} was already closed.`);
  }
}
