import type { ClientChannel } from 'ssh2';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { StorageError } from '../../lib/errors.js';
import type { ResumableImport } from '../driver.js';
import { ImportBase } from '../kit/import-target.js';
import type { SshConnection } from './connection.js';
import { checkRun, firstLine, type RemoteScope } from './remote-errors.js';
import { ABORT, COMMIT } from './scripts.js';

/**
 * An import in progress: the bytes go into `dd of=<temp> conv=excl,fsync` on the host (or, resumed, appended
 * by `dd oflag=append` from `from` on). The stream finishes only once dd has written and synced everything;
 * commit() renames, abort() removes, suspend() leaves the synced partial bytes for resumeImport.
 */
export class SftpImport extends ImportBase implements ResumableImport {
  readonly stream: Writable;
  private readonly done: Promise<void>;
  private channelClosed = false;

  constructor(
    private readonly conn: SshConnection,
    private readonly scope: RemoteScope,
    installPath: string,
    private readonly tempPath: string,
    private readonly dir: string,
    private readonly ch: ClientChannel,
    private readonly from = 0,
    private readonly read?: (tempPath: string, end: number) => Promise<Readable>,
  ) {
    super(installPath);
    const where = conn.where;
    let stderr = '';
    let pending = '';
    let code: number | null | undefined;
    let marked: number | undefined;
    let sig: string | undefined;
    ch.stderr.on('data', (d: Buffer) => {
      pending += d.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (line.startsWith('@X ')) marked = Number(line.slice(3));
        else if (stderr.length < 4096) stderr += `${line}\n`;
      }
    });
    ch.on('data', () => undefined);
    ch.on('exit', (c: number | null, s?: string) => {
      code = c;
      sig = s;
    });
    ch.on('error', () => undefined);
    this.done = new Promise<void>((resolve, reject) => {
      ch.once('close', () => {
        this.channelClosed = true;
        // The exit-status message may be missing under load; the script's own last line then tells.
        if (code === undefined && marked !== undefined && Number.isInteger(marked)) code = marked;
        if (code === 0) return resolve();
        let err: StorageError;
        if (code === undefined) {
          err = new StorageError(
            'unreachable',
            `the SSH connection to ${where} was lost while writing ${installPath}; check that the host and its sshd are up.`,
          );
        } else if (/No space left|quota exceeded/i.test(stderr)) {
          err = new StorageError(
            'no-space',
            `writing the image: no space left on the file system of ${scope.root} on ${where}; free space or add capacity.`,
          );
        } else if (/Permission denied|Read-only/i.test(stderr)) {
          err = new StorageError(
            'permission',
            `writing the image: ${firstLine(stderr)} on ${where}; give ${where.split('@')[0]} write access to ${scope.root}.`,
          );
        } else {
          err = new StorageError(
            'io',
            `writing the image ${installPath} on ${where} failed${stderr ? `: ${firstLine(stderr)}` : sig ? ` (SIG${sig})` : ` (exit status ${code})`}.`,
          );
        }
        // Closed by our own abort: commit() then says "aborted", not this.
        if (this.state === 'open') this.failure ??= err;
        reject(err);
      });
    });
    this.done.catch((err: StorageError) => {
      // The writer died under us (disk full, connection lost): nothing usable is left; remove it first.
      if (this.state === 'open') void this.cleanup(err).catch(() => undefined);
    });

    let waiting: ((err?: Error | null) => void) | undefined;
    const onDrain = (): void => {
      const cb = waiting;
      waiting = undefined;
      cb?.();
    };
    ch.on('drain', onDrain);
    this.done.then(
      () => undefined,
      (err: Error) => {
        const cb = waiting;
        waiting = undefined;
        cb?.(err);
      },
    );
    const write = (chunk: Buffer, cb: (err?: Error | null) => void): void => {
      if (this.failure) return cb(this.failure);
      if (this.channelClosed) return cb(new StorageError('io', `the writer of ${installPath} on ${where} has ended.`));
      if (ch.write(chunk)) return cb();
      waiting = cb;
    };
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => write(chunk, cb),
      writev: (chunks, cb) => write(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), cb),
      final: (cb) => {
        if (this.failure) return cb(this.failure);
        ch.end();
        this.done.then(
          () => cb(),
          (err: Error) => cb(err),
        );
      },
    });
  }

  protected override async writerDone(): Promise<void> {
    await this.done;
  }

  get tempName(): string {
    return path.posix.basename(this.tempPath);
  }

  /** Ends the writer (dd syncs) and leaves the partial bytes for resumeImport. */
  async suspend(): Promise<void> {
    await this.suspendWith(
      () => this.done,
      (err) => err,
    );
  }

  readBefore(): Promise<Readable> {
    if (this.from === 0 || !this.read) return Promise.resolve(Readable.from([]));
    return this.read(this.tempPath, this.from - 1);
  }

  protected async install(): Promise<void> {
    const r = await this.conn.run(COMMIT, [this.tempPath, this.installPath], { retry: true });
    checkRun(r, this.scope, 'committing the image', this.installPath);
  }

  /** Stops the writer, removes the temporary file (and the image directory if empty), ends the stream. */
  protected async discardPartial(err?: Error): Promise<void> {
    if (!this.channelClosed) {
      this.ch.close();
      await Promise.race([this.done.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    if (!this.stream.destroyed) this.stream.destroy(err);
    const r = await this.conn.run(ABORT, [this.tempPath, this.dir], { retry: true });
    checkRun(r, this.scope, 'removing the partial image', this.tempPath);
  }

  protected describeFailure(err: unknown): unknown {
    return err;
  }
}
