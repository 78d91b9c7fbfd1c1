import type { BackupStorageTable, ImageBackupStorageRefTable, ImageTable, SessionTable } from '../db/schema.js';
import { zstackDate } from '../lib/dates.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';

/** Drops null/undefined fields: ZStack's serialiser never writes nulls. */
export function omitNulls<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === null || o[k] === undefined) delete o[k];
  return o;
}

export function refInventory(r: ImageBackupStorageRefTable): Record<string, unknown> {
  return withClass(
    INVENTORY_CLASS.imageBackupStorageRef,
    omitNulls({
      imageUuid: r.image_uuid,
      backupStorageUuid: r.backup_storage_uuid,
      installPath: r.install_path,
      status: r.status,
      exportMd5Sum: r.export_md5_sum,
      exportUrl: r.export_url,
      createDate: zstackDate(r.create_date),
      lastOpDate: zstackDate(r.last_op_date),
    }),
  );
}

/** ImageInventory exactly as ZStack writes it (header/.../image/ImageInventory.java). */
export function imageInventory(i: ImageTable, refs: readonly ImageBackupStorageRefTable[]): Record<string, unknown> {
  return withClass(
    INVENTORY_CLASS.image,
    omitNulls({
      uuid: i.uuid,
      name: i.name,
      description: i.description,
      state: i.state,
      status: i.status,
      size: i.size,
      actualSize: i.actual_size,
      md5Sum: i.md5_sum,
      url: i.url,
      mediaType: i.media_type,
      guestOsType: i.guest_os_type,
      type: i.type,
      platform: i.platform,
      architecture: i.architecture,
      format: i.format,
      system: i.system === 1,
      virtio: i.virtio === null ? null : i.virtio === 1,
      createDate: zstackDate(i.create_date),
      lastOpDate: zstackDate(i.last_op_date),
      backupStorageRefs: refs.map(refInventory),
    }),
  );
}

/**
 * The fields of BackupStorageInventory (untagged: the storage service adds its type's fields and tags the
 * result with its type's class). Driver settings (secrets) are never included; `attachedZoneUuids` as loaded
 * with the row.
 */
export function backupStorageInventory(b: BackupStorageTable & { attachedZoneUuids?: string[] }): Record<string, unknown> {
  return omitNulls({
    uuid: b.uuid,
    name: b.name,
    url: b.url,
    description: b.description,
    totalCapacity: b.total_capacity,
    availableCapacity: b.available_capacity,
    type: b.type,
    state: b.state,
    status: b.status,
    // zimage extension: why a storage is Disconnected.
    statusReason: b.status === 'Connected' ? null : b.status_reason,
    createDate: zstackDate(b.create_date),
    lastOpDate: zstackDate(b.last_op_date),
    attachedZoneUuids: b.attachedZoneUuids ?? [],
  });
}

export function sessionInventory(s: SessionTable): Record<string, unknown> {
  return withClass(INVENTORY_CLASS.session, {
    uuid: s.uuid,
    accountUuid: s.account_uuid,
    userUuid: s.user_uuid,
    userType: s.user_type,
    expiredDate: zstackDate(s.expired_date),
    createDate: zstackDate(s.create_date),
    noSessionEvaluation: false,
  });
}
