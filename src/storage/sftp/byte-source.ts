import type { SFTPWrapper } from 'ssh2';
import { HandleByteSource } from '../kit/byte-source.js';

/** What a byte source needs from the driver: SFTP errors as StorageErrors, and a count of bytes read. */
export interface SftpReadHost {
  sftpError(err: unknown, what: string, p: string): Error;
  sftpBytesRead: number;
}

/** Positional reads over an SFTP handle; reads never go past the end of the file (its length at open). */
export class SftpByteSource extends HandleByteSource {
  constructor(
    private readonly driver: SftpReadHost,
    private readonly sftp: SFTPWrapper,
    private readonly handle: Buffer,
    private readonly bytes: number,
    name: string,
  ) {
    super(name);
  }

  protected length(): Promise<number> {
    return Promise.resolve(this.bytes);
  }

  protected async readPiece(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.alloc(length);
    const bytesRead = await new Promise<number>((resolve, reject) =>
      this.sftp.read(this.handle, buf, 0, length, offset, (err, nb) =>
        err ? reject(this.driver.sftpError(err, 'reading the image', this.name)) : resolve(nb),
      ),
    );
    this.driver.sftpBytesRead += bytesRead;
    return buf.subarray(0, bytesRead);
  }

  protected release(): Promise<void> {
    return new Promise<void>((resolve) => this.sftp.close(this.handle, () => resolve()));
  }
}
