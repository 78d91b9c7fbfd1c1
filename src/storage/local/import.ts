import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { ResumableImport } from '../driver.js';
import { ImportBase } from '../kit/import-target.js';
import { fsError } from './fs-error.js';

/**
 * A write in progress: bytes go to the temporary file (from `from` on, when resumed); commit() syncs and
 * renames, abort() removes, suspend() syncs and closes, leaving the partial bytes for resumeImport.
 */
export class LocalImport extends ImportBase implements ResumableImport {
  readonly stream: Writable;
  private closed = false;

  constructor(
    installPath: string,
    private readonly tempPath: string,
    private readonly dir: string,
    private readonly fh: fsp.FileHandle,
    private readonly from = 0,
    private readonly read?: (tempPath: string, end: number) => Promise<Readable>,
  ) {
    super(installPath);
    let position = from;
    const writeAll = async (buf: Buffer): Promise<void> => {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, position);
        off += bytesWritten;
        position += bytesWritten;
      }
    };
    const onWriteError = async (err: unknown): Promise<Error> => {
      const e = this.failure ?? fsError(err, 'writing the image', installPath);
      this.failure = e;
      // A failed write leaves nothing usable: remove the temporary file before the error is seen.
      await this.cleanup(e);
      return e;
    };
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        writeAll(chunk).then(
          () => cb(),
          (err: unknown) => void onWriteError(err).then((e) => cb(e)),
        );
      },
      writev: (chunks, cb) => {
        writeAll(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(
          () => cb(),
          (err: unknown) => void onWriteError(err).then((e) => cb(e)),
        );
      },
    });
  }

  get tempName(): string {
    return path.basename(this.tempPath);
  }

  async suspend(): Promise<void> {
    if (this.suspended) return;
    await this.suspendWith(
      () => this.fh.sync(),
      (err) => fsError(err, 'writing the image', this.installPath),
    );
    if (this.suspended) await this.closeFile();
  }

  readBefore(): Promise<Readable> {
    if (this.from === 0 || !this.read) return Promise.resolve(Readable.from([]));
    return this.read(this.tempPath, this.from - 1);
  }

  protected async install(): Promise<void> {
    await this.fh.sync();
    await this.closeFile();
    await fsp.rename(this.tempPath, this.installPath);
    // Make the rename durable; a failure here does not undo the commit.
    try {
      const d = await fsp.open(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
      await d.sync().finally(() => d.close());
    } catch {
      // Some file systems refuse fsync on directories.
    }
  }

  /** Closes and removes the temporary file (and the image directory if empty), then ends the stream. */
  protected async discardPartial(err?: Error): Promise<void> {
    await this.closeFile();
    await fsp.rm(this.tempPath, { force: true }).catch(() => undefined);
    await fsp.rmdir(this.dir).catch(() => undefined); // only if empty
    if (!this.stream.destroyed) this.stream.destroy(err);
  }

  protected describeFailure(err: unknown, phase: 'writing' | 'committing'): unknown {
    return fsError(err, phase === 'writing' ? 'writing the image' : 'committing the image', this.installPath);
  }

  private async closeFile(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }
}
