/**
 * Random-access view of an image's bytes. Storage drivers implement it over a local file, an SFTP handle
 * or an RBD image; the format inspector reads only the few regions it needs through it.
 */
export interface ByteSource {
  /** Total length in bytes (the file length, not the allocated size). */
  size(): Promise<number>;
  /**
   * Reads `length` bytes at `offset`. Returns fewer bytes only when the end of the source is reached
   * (an empty array at or past the end). Never returns more than asked.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A ByteSource over an in-memory buffer: handy for tests and for headers already read. */
export class BufferByteSource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  size(): Promise<number> {
    return Promise.resolve(this.bytes.length);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    if (offset >= this.bytes.length || length <= 0) return Promise.resolve(new Uint8Array(0));
    return Promise.resolve(this.bytes.subarray(offset, Math.min(this.bytes.length, offset + length)));
  }
}
