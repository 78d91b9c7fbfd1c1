import { Writable } from 'node:stream';
import { StorageError } from '../../lib/errors.js';
import type { FileImportTarget } from '../driver.js';
import type { ImportHost } from './import.js';
import type { RbdRun } from './rbd-process.js';
import { RbdImportBase } from './rbd-import-base.js';

/**
 * `rbd import /dev/fd/3 <pool>/<temp>` with a local file as the child's descriptor 3: rbd reads the file
 * itself, as for `rbd import FILE` (a regular file, so its size is known and reads run at its own pace), and
 * no byte passes through Node. `stored` settles when rbd exits; commit() renames the temporary image,
 * abort() kills rbd and removes the image.
 */
export class CephFileImport extends RbdImportBase<ImportHost> implements FileImportTarget {
  /** Takes no bytes: rbd reads the file. Ended at once so commit() goes straight to waiting for rbd. */
  readonly stream: Writable;
  readonly stored: Promise<void>;

  constructor(
    host: ImportHost,
    installPath: string,
    finalName: string,
    tempName: string,
    private readonly run: RbdRun,
  ) {
    super(host, installPath, finalName, tempName);
    this.stream = new Writable({
      write: (_chunk, _enc, cb) => cb(new StorageError('invalid', `storing image ${installPath}: rbd reads the file itself`)),
    });
    this.stream.end();
    this.stored = run.exit.then(async (exit) => {
      if (exit.code !== 0) throw await this.error();
    });
    this.stored.catch(() => undefined); // reported through commit() or by the caller awaiting it
  }

  /** The importer's failure, once it has exited. */
  private async error(): Promise<StorageError> {
    const exit = await this.run.exit;
    this.failure ??= await this.host.importFailure(exit, this.run.stderr(), this.installPath, this.finalName);
    return this.failure;
  }

  protected override writerDone(): Promise<void> {
    return this.stored;
  }

  /**
   * Kills rbd if it still runs (it ignores SIGINT and SIGTERM leaves its watch as SIGKILL does) and removes the
   * temporary image, evicting the dead rbd's watch first.
   */
  protected async discardPartial(): Promise<void> {
    const proc = this.run.proc;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await this.run.exit;
    }
    await this.host.removeImage(this.tempName, `removing the partial import of ${this.installPath}`, true);
  }
}
