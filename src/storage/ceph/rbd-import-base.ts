import { StorageError } from '../../lib/errors.js';
import { ImportBase } from '../kit/import-target.js';

/** What every Ceph import needs from its driver to install its bytes. */
export interface RenameHost {
  renameImage(from: string, to: string, installPath: string): Promise<void>;
}

/**
 * What the three ways into an RBD image (rbd import from a stream, rbd import of a file, a resumed import
 * through the helper) share: the bytes go to the temporary image `tempName`, and commit renames it to `finalName`.
 */
export abstract class RbdImportBase<Host extends RenameHost> extends ImportBase {
  constructor(
    protected readonly host: Host,
    installPath: string,
    protected readonly finalName: string,
    readonly tempName: string,
  ) {
    super(installPath);
  }

  protected async install(): Promise<void> {
    await this.host.renameImage(this.tempName, this.finalName, this.installPath);
  }

  protected describeFailure(err: unknown): unknown {
    return err instanceof StorageError ? err : new StorageError('io', `storing image ${this.installPath}: ${(err as Error).message}`);
  }
}
