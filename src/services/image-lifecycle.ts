import type { Logger } from 'pino';
import type { ImageBackupStorageRefTable, ImageTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { isUuid, newUuid } from '../lib/ids.js';
import type { BackupStorageService } from './backup-storage.js';
import type { ImageStore } from './images.js';

export type { CopyDeletionPolicy as DeletionPolicy } from './images.js';
import type { CopyDeletionPolicy as DeletionPolicy } from './images.js';
export { BOOT_MODES } from './boot-mode-tags.js';

export interface UpdateImageParams {
  name?: string;
  description?: string;
  guestOsType?: string;
  mediaType?: string;
  format?: string;
  system?: boolean;
  platform?: string;
  architecture?: string;
  virtio?: boolean;
}

/**
 * Delete (Direct / Delay / Never), expunge, recover, state, update and boot mode of images.
 * - Direct removes the bytes and the copy at once and gives the capacity back.
 * - Delay marks copies (then the image) Deleted; they can be recovered until the expunger removes them.
 * - Never marks them Deleted too, but zimage never removes their bytes: expunging forgets the copy only.
 */
export class ImageLifecycle {
  /** The configured DeleteImage policy (image.deletionPolicy in ZStack). */
  defaultPolicy: DeletionPolicy = 'Delay';

  constructor(
    readonly images: ImageStore,
    readonly storages: BackupStorageService,
    readonly log: Logger,
  ) {}

  private get db() {
    return this.images.db;
  }

  /**
   * The Deleted copies Expunge or Recover act on (ImageBase): without `backupStorageUuids`, every Deleted
   * copy (none is SYS.1006); with them, each named storage must hold a Deleted copy (else SYS.1007).
   */
  private async deletedRefs(
    image: ImageTable,
    backupStorageUuids: string[] | undefined,
    notDeleted: (ref: ImageBackupStorageRefTable) => string,
  ): Promise<ImageBackupStorageRefTable[]> {
    const refs = await this.images.refs(image.uuid);
    if (!backupStorageUuids?.length) {
      const deleted = refs.filter((r) => r.status === 'Deleted');
      if (deleted.length === 0) {
        throw new ZStackError('SYS.1006', `the image[uuid:${image.uuid}, name:${image.name}] is not deleted on any backup storage`);
      }
      return deleted;
    }
    const picked: ImageBackupStorageRefTable[] = [];
    for (const bsUuid of backupStorageUuids) {
      const ref = refs.find((r) => r.backup_storage_uuid === bsUuid);
      if (!ref) {
        throw new ZStackError('SYS.1007', `the image[uuid:${image.uuid}, name:${image.name}] is not on the backup storage[uuid:${bsUuid}]`);
      }
      if (ref.status !== 'Deleted') throw new ZStackError('SYS.1007', notDeleted(ref));
      if (!picked.includes(ref)) picked.push(ref);
    }
    return picked;
  }

  /** Image status from its copies: Deleted once no copy is left alive. */
  private async settleImage(uuid: string): Promise<'gone' | 'deleted' | 'alive'> {
    const refs = await this.images.refs(uuid);
    if (refs.length === 0) {
      await this.images.remove(uuid);
      return 'gone';
    }
    const alive = refs.some((r) => r.status !== 'Deleted');
    // Error (unsafe or missing bytes, see ImageStore.setCopyStatus) only while no live copy is Ready.
    const onlyError = alive && !refs.some((r) => r.status === 'Ready') && refs.some((r) => r.status === 'Error');
    await this.images.setStatus(uuid, alive ? (onlyError ? 'Error' : 'Ready') : 'Deleted');
    return alive ? 'alive' : 'deleted';
  }

  /** Removes one copy: its bytes (unless kept), its row and its digests. */
  private async removeCopy(ref: ImageBackupStorageRefTable, keepBytes: boolean): Promise<void> {
    const row = await this.storages.get(ref.backup_storage_uuid);
    if (row && !keepBytes && ref.install_path) {
      try {
        await this.storages.driver(row).delete(ref.install_path);
      } catch (err) {
        throw new ZStackError(
          'SYS.1004',
          `cannot remove image copy ${ref.install_path} from backup storage[uuid:${row.uuid}, name:${row.name}]: ${(err as Error).message}`,
        );
      }
    }
    await this.images.removeCopy(ref.image_uuid, ref.backup_storage_uuid);
    this.log.info(
      {
        event: 'image.expunge',
        image: ref.image_uuid,
        backupStorage: ref.backup_storage_uuid,
        installPath: ref.install_path,
        bytesKept: keepBytes,
      },
      'image copy expunged',
    );
    if (row && !keepBytes) await this.storages.refreshCapacity(row.uuid);
  }

  /**
   * DeleteImage. A well-formed but unknown uuid succeeds, as in ZStack; named storages must exist (SYS.1003)
   * and those without a copy are skipped. An image still being added is removed at once, rows and all, and
   * its add is stopped (it fails with SYS.1006 "has been deleted"), as ZStack's ImageBase does.
   */
  async delete(uuid: string, policy: DeletionPolicy, backupStorageUuids?: string[]): Promise<void> {
    if (!isUuid(uuid)) throw new ZStackError('SYS.1003', `invalid value[${uuid}] of field [uuid]`);
    const image = await this.images.get(uuid);
    if (!image) return;
    if (backupStorageUuids?.length) await this.storages.requireAll(backupStorageUuids, 'backupStorageUuids');
    if (image.status === 'Downloading') {
      await this.images.remove(uuid);
      await this.images.addsInFlight.stop(uuid);
      return;
    }
    const refs = (await this.images.refs(uuid)).filter(
      (r) => r.status !== 'Deleted' && (!backupStorageUuids?.length || backupStorageUuids.includes(r.backup_storage_uuid)),
    );
    this.log.info(
      { event: 'image.delete', image: uuid, name: image.name, policy, backupStorages: refs.map((r) => r.backup_storage_uuid) },
      'image deleted',
    );
    for (const ref of refs) {
      if (policy === 'Direct') await this.removeCopy(ref, false);
      else await this.images.setRefStatus(uuid, ref.backup_storage_uuid, 'Deleted', policy);
    }
    await this.settleImage(uuid);
  }

  /** ExpungeImage: removes Deleted copies for good (bytes kept under the Never policy). */
  async expunge(uuid: string, backupStorageUuids?: string[]): Promise<void> {
    const image = await this.images.require(uuid, 'imageUuid');
    if (backupStorageUuids?.length) await this.storages.requireAll(backupStorageUuids, 'backupStorageUuids');
    const refs = await this.deletedRefs(
      image,
      backupStorageUuids,
      (ref) => `the image[uuid:${uuid}, name:${image.name}] is not deleted on the backup storage[uuid:${ref.backup_storage_uuid}]`,
    );
    for (const ref of refs) await this.removeCopy(ref, ref.deletion_policy === 'Never');
    await this.settleImage(uuid);
  }

  /** RecoverImage: Deleted copies come back Ready (their bytes were kept). Its list is not checked for existence. */
  async recover(uuid: string, backupStorageUuids?: string[]): Promise<Record<string, unknown>> {
    const image = await this.images.require(uuid, 'imageUuid');
    const refs = await this.deletedRefs(
      image,
      backupStorageUuids,
      (ref) =>
        `the image[uuid:${uuid}, name:${image.name}]'s status[${ref.status}] is not Deleted on the backup storage[uuid:${ref.backup_storage_uuid}]`,
    );
    for (const ref of refs) await this.images.setRefStatus(uuid, ref.backup_storage_uuid, 'Ready');
    await this.settleImage(uuid);
    return { inventory: await this.images.inventory(uuid) };
  }

  /** ChangeImageState: no status check, a Deleted image too (as ImageBase). */
  async changeState(uuid: string, stateEvent: 'enable' | 'disable'): Promise<Record<string, unknown>> {
    await this.images.require(uuid);
    await this.images.update(uuid, { state: stateEvent === 'enable' ? 'Enabled' : 'Disabled' });
    return { inventory: await this.images.inventory(uuid) };
  }

  /** UpdateImage: no status check, a Deleted image too (as ImageBase). */
  async update(uuid: string, p: UpdateImageParams): Promise<Record<string, unknown>> {
    await this.images.require(uuid);
    const set: Partial<ImageTable> = {};
    if (p.name !== undefined) set.name = p.name;
    if (p.description !== undefined) set.description = p.description;
    if (p.guestOsType !== undefined) set.guest_os_type = p.guestOsType;
    if (p.mediaType !== undefined) set.media_type = p.mediaType;
    if (p.format !== undefined) set.format = p.format;
    if (p.system !== undefined) set.system = p.system ? 1 : 0;
    if (p.platform !== undefined)
      set.platform = p.platform === 'Paravirtualization' ? 'Other' : p.platform === 'WindowsVirtio' ? 'Windows' : p.platform;
    if (p.architecture !== undefined) set.architecture = p.architecture;
    if (p.virtio !== undefined) set.virtio = p.virtio ? 1 : 0;
    await this.images.update(uuid, set);
    return { inventory: await this.images.inventory(uuid) };
  }

  /** SetImageBootMode: kept as the system tag bootMode::<mode>, as ZStack does. */
  async setBootMode(uuid: string, bootMode: string): Promise<void> {
    const image = await this.images.require(uuid);
    // ImageApiInterceptor
    if (bootMode === 'Legacy' && image.architecture === 'aarch64')
      throw new ZStackError('SYS.1007', 'The aarch64 architecture does not support legacy.');
    await this.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom('tag')
        .where('resource_uuid', '=', uuid)
        .where('type', '=', 'System')
        .where('tag', 'like', 'bootMode::%')
        .execute();
      await trx
        .insertInto('tag')
        .values({
          uuid: newUuid(),
          resource_uuid: uuid,
          resource_type: 'ImageVO',
          tag: `bootMode::${bootMode}`,
          type: 'System',
          create_date: Date.now(),
        })
        .execute();
    });
  }

  /** The expunger: copies Deleted under Delay for longer than the period are removed. */
  async expungeDue(periodSec: number): Promise<number> {
    const due = await this.db
      .selectFrom('image_backup_storage_ref')
      .selectAll()
      .where('status', '=', 'Deleted')
      .where('deletion_policy', '=', 'Delay')
      .where('deleted_date', '<=', Date.now() - periodSec * 1000)
      .execute();
    for (const ref of due) {
      try {
        await this.removeCopy(ref, false);
        await this.settleImage(ref.image_uuid);
      } catch (err) {
        this.log.warn({ err, image: ref.image_uuid, backupStorage: ref.backup_storage_uuid }, 'expunge failed; will retry');
      }
    }
    return due.length;
  }
}
