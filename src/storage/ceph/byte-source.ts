import { HandleByteSource } from '../kit/byte-source.js';

/** Largest single read asked of the helper. */
export const READ_CHUNK = 4 << 20;

/** What a byte source needs from the driver: bounded reads through an open helper handle. */
export interface HandleReader {
  readAt(handle: number, offset: number, length: number, installPath: string): Promise<Buffer>;
  closeHandle(handle: number): Promise<void>;
}

/** An RBD image opened read-only in the helper; reads are bounded (READ_CHUNK each) and never past the end. */
export class RbdByteSource extends HandleByteSource {
  constructor(
    private readonly driver: HandleReader,
    private readonly handle: number,
    private readonly bytes: number,
    name: string,
  ) {
    super(name, READ_CHUNK);
  }

  protected length(): Promise<number> {
    return Promise.resolve(this.bytes);
  }

  protected readPiece(offset: number, length: number): Promise<Uint8Array> {
    return this.driver.readAt(this.handle, offset, length, this.name);
  }

  protected release(): Promise<void> {
    return this.driver.closeHandle(this.handle);
  }
}
