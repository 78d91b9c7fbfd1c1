import { StorageError } from '../../lib/errors.js';
import type { OpenByteSource } from '../driver.js';
import { readableLength } from './byte-range.js';

/**
 * An OpenByteSource over a handle (file descriptor, SFTP handle, RBD image in the helper): a read is clipped
 * at the end of the image and made of pieces of at most `maxPiece` bytes; use after close() is refused.
 * A driver supplies the length, one piece, and the release of the handle.
 */
export abstract class HandleByteSource implements OpenByteSource {
  private closed = false;

  constructor(
    /** The image as messages name it. */
    protected readonly name: string,
    private readonly maxPiece = Number.POSITIVE_INFINITY,
  ) {}

  /** The image's length now. */
  protected abstract length(): Promise<number>;
  /** Up to `length` bytes at `offset` (fewer where the storage returns fewer; none at the end). */
  protected abstract readPiece(offset: number, length: number): Promise<Uint8Array>;
  /** Closes the handle. */
  protected abstract release(): Promise<void>;

  async size(): Promise<number> {
    this.assertOpen();
    return this.length();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen();
    const n = readableLength(this.name, offset, length, await this.length());
    if (n === 0) return new Uint8Array(0);
    const parts: Uint8Array[] = [];
    for (let done = 0; done < n;) {
      const piece = await this.readPiece(offset + done, Math.min(this.maxPiece, n - done));
      if (piece.length === 0) break;
      parts.push(piece);
      done += piece.length;
    }
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    // A plain view (not a Buffer), whichever the storage returned.
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.release();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('invalid', `image ${this.name} was already closed.`);
  }
}
