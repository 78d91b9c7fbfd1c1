import { Readable, Writable } from 'node:stream';
import { StorageError } from '../../lib/errors.js';
import type { ResumableImport } from '../driver.js';
import { READ_CHUNK } from './byte-source.js';
import { RbdImportBase } from './rbd-import-base.js';

/** What a resumed import needs from the driver: helper requests (failures as StorageError) and image calls. */
export interface ResumeHost {
  call<T = any>(op: string, args: Record<string, unknown>, what: string, payload?: Buffer): Promise<{ r: T; data: Buffer }>;
  imageSize(name: string, what: string): Promise<number>;
  renameImage(from: string, to: string, installPath: string): Promise<void>;
  removeImage(name: string, what: string): Promise<boolean>;
  /** The first `end + 1` bytes of the partial image `name`. */
  readPartial(name: string, end: number): Promise<Readable>;
}

/**
 * Opens the partial image `tempName` of an import of `imageUuid` (its name starts with `prefix`) for writing, cut
 * to `offset` bytes; a name not of that import, or an image shorter than offset, is invalid.
 */
export async function reopenImport(
  host: ResumeHost,
  installPath: string,
  imageUuid: string,
  prefix: string,
  tempName: string,
  offset: number,
): Promise<CephResumedImport> {
  const ours = typeof tempName === 'string' && tempName.startsWith(prefix) && /^[0-9a-f]{12}$/.test(tempName.slice(prefix.length));
  if (!ours || !Number.isSafeInteger(offset) || offset < 0)
    throw new StorageError('invalid', `[${String(tempName)}] is not the partial image of an import of image ${imageUuid}.`);
  const what = `reopening the partial image ${tempName} of ${installPath}`;
  const { r } = await host.call<{ handle?: number; size: number }>('openw', { image: tempName, cut: offset }, what);
  if (r.handle === undefined) throw new StorageError('invalid', `${what}: it has ${r.size} bytes, fewer than the ${offset} recorded.`);
  return new CephResumedImport(host, installPath, imageUuid, tempName, r.handle, offset);
}

/**
 * A suspended import continued (on any node): the partial RBD image `tempName`, cut to `from` bytes, opened for
 * writing in the storage's helper; the bytes are written after it in pieces of up to READ_CHUNK (librbd
 * Image.write, the image grown as needed). commit() flushes and renames, abort() removes, suspend() flushes
 * and checks the image holds exactly the bytes so far.
 */
export class CephResumedImport extends RbdImportBase<ResumeHost> implements ResumableImport {
  readonly stream: Writable;
  private position: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private open = true;

  constructor(
    host: ResumeHost,
    installPath: string,
    finalName: string,
    tempName: string,
    private readonly handle: number,
    private readonly from: number,
  ) {
    super(host, installPath, finalName, tempName);
    this.position = from;
    const fail = (err: unknown, cb: (e?: Error | null) => void): void => {
      this.failure ??= this.describeFailure(err) as StorageError;
      cb(this.failure);
    };
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
        if (this.pendingBytes < READ_CHUNK) return cb();
        this.flush().then(
          () => cb(),
          (err: unknown) => fail(err, cb),
        );
      },
      final: (cb) => {
        this.flush().then(
          () => cb(),
          (err: unknown) => fail(err, cb),
        );
      },
    });
  }

  /** Writes the buffered bytes at the current position. */
  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    for (let off = 0; off < data.length; off += READ_CHUNK) {
      const piece = data.subarray(off, Math.min(data.length, off + READ_CHUNK));
      await this.host.call('write', { handle: this.handle, offset: this.position }, `storing image ${this.installPath}`, piece);
      this.position += piece.length;
    }
  }

  /** Flushes and closes the handle, then checks the image holds exactly the bytes written. */
  protected override async writerDone(): Promise<void> {
    await this.closeHandle();
    const what = `storing image ${this.installPath}`;
    const size = await this.host.imageSize(this.tempName, what);
    if (size !== this.position)
      throw new StorageError('io', `${what}: the partial RBD image has ${size} bytes, not the ${this.position} written.`);
  }

  async suspend(): Promise<void> {
    await this.suspendWith(
      () => this.writerDone(),
      (err) => this.describeFailure(err),
    );
  }

  readBefore(): Promise<Readable> {
    if (this.from === 0) return Promise.resolve(Readable.from([]));
    return this.host.readPartial(this.tempName, this.from - 1);
  }

  protected async discardPartial(err?: Error): Promise<void> {
    if (!this.stream.destroyed) this.stream.destroy(err);
    await this.closeHandle().catch(() => undefined);
    await this.host.removeImage(this.tempName, `removing the partial import of ${this.installPath}`);
  }

  private async closeHandle(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    // Closing flushes librbd's cache: its failure is a write failure.
    await this.host.call('close', { handle: this.handle }, `storing image ${this.installPath}`);
  }
}
