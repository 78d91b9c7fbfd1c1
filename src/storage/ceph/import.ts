import type { ChildProcess } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { StorageError } from '../../lib/errors.js';
import type { ResumableImport } from '../driver.js';
import { RbdImportBase } from './rbd-import-base.js';

/** How an `rbd` process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What an import needs from the driver. */
export interface ImportHost {
  importFailure(exit: Exit, stderr: string, installPath: string, image: string): Promise<StorageError>;
  renameImage(from: string, to: string, installPath: string): Promise<void>;
  removeImage(name: string, what: string, evict?: boolean): Promise<boolean>;
  /** The size of an RBD image of the pool. */
  imageSize(name: string, what: string): Promise<number>;
}

/**
 * `rbd import - <pool>/<temp>` fed from `stream`. The end of the stream lets rbd finish; commit() renames
 * the temporary image, abort() removes it, suspend() lets rbd finish the partial image (exactly the bytes
 * written) for resumeImport. The importer is never killed while it can still finish: a killed writer leaves
 * a watch on the image that blocks its removal for ~30 s.
 */
export class CephImport extends RbdImportBase<ImportHost> implements ResumableImport {
  readonly stream: Writable;
  private exitInfo: Exit | undefined;
  /** Bytes handed to rbd. */
  private written = 0;

  constructor(
    host: ImportHost,
    installPath: string,
    finalName: string,
    tempName: string,
    private readonly run: { proc: ChildProcess; exit: Promise<Exit>; stderr: () => string },
  ) {
    super(host, installPath, finalName, tempName);
    const stdin = run.proc.stdin!;
    stdin.on('error', () => undefined); // EPIPE when rbd stopped early: its exit status says why
    // run.exit never rejects: a failed or killed rbd resolves with its code and signal.
    void run.exit.then((e) => {
      this.exitInfo = e;
    });
    const waitDrain = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const onDrain = (): void => {
          run.proc.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          stdin.off('drain', onDrain);
          this.error().then(reject, reject);
        };
        stdin.once('drain', onDrain);
        run.proc.once('close', onClose);
      });
    this.stream = new Writable({
      highWaterMark: 4 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        if (this.exitInfo || stdin.destroyed) {
          this.error().then(cb, cb);
          return;
        }
        this.written += chunk.length;
        if (stdin.write(chunk)) cb();
        else waitDrain().then(() => cb(), cb);
      },
      final: (cb) => {
        stdin.end();
        void run.exit.then((e) => (e.code === 0 ? cb() : this.error().then(cb, cb)));
      },
      destroy: (err, cb) => {
        // Let rbd finish what it has (EOF); abort() removes the partial image.
        if (!stdin.writableEnded) stdin.end();
        cb(err);
      },
    });
  }

  /** The importer's failure, once it has exited. */
  private async error(): Promise<StorageError> {
    const exit = await this.run.exit;
    this.failure ??= await this.host.importFailure(
      exit.code === 0 ? { code: 1, signal: null } : exit,
      exit.code === 0 ? 'rbd import stopped before the end of the data' : this.run.stderr(),
      this.installPath,
      this.finalName,
    );
    return this.failure;
  }

  protected override async writerDone(): Promise<void> {
    const exit = await this.run.exit;
    if (exit.code !== 0) throw await this.error();
  }

  /** Ends rbd's input: it finishes the partial image with the bytes written, which must then be its size. */
  async suspend(): Promise<void> {
    await this.suspendWith(
      async () => {
        await this.writerDone();
        const size = await this.host.imageSize(this.tempName, `suspending the import of ${this.installPath}`);
        if (size !== this.written) {
          throw new StorageError(
            'io',
            `suspending the import of ${this.installPath}: rbd stored ${size} bytes of the ${this.written} written.`,
          );
        }
      },
      (err) => this.describeFailure(err),
    );
  }

  /** A fresh import has nothing before its first byte. */
  readBefore(): Promise<Readable> {
    return Promise.resolve(Readable.from([]));
  }

  /** Lets rbd finish (or kills it when it cannot) and removes the temporary image. */
  protected async discardPartial(): Promise<void> {
    const proc = this.run.proc;
    if (!this.stream.destroyed) this.stream.destroy();
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.stdin?.end();
      // rbd flushes and exits at EOF; if the cluster is gone it cannot, then it is killed.
      const t = setTimeout(() => proc.kill('SIGTERM'), 15_000);
      const t2 = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await this.run.exit;
      clearTimeout(t);
      clearTimeout(t2);
    }
    await this.host.removeImage(this.tempName, `removing the partial import of ${this.installPath}`);
  }
}
