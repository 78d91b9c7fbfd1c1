import type { promises as fsp } from 'node:fs';
import { HandleByteSource } from '../kit/byte-source.js';
import { fsError } from './fs-error.js';

/** Positional reads over an open file; reads never go past the end of the file (its length at each read). */
export class FileByteSource extends HandleByteSource {
  constructor(
    private readonly fh: fsp.FileHandle,
    name: string,
  ) {
    super(name);
  }

  protected async length(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  protected async readPiece(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.alloc(length);
    try {
      const { bytesRead } = await this.fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      throw fsError(err, 'reading the image', this.name);
    }
  }

  protected async release(): Promise<void> {
    await this.fh.close();
  }
}
