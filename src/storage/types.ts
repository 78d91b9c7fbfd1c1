import type { BackupStorageDriver } from './driver.js';

/** What a driver is built from: its storage row's url and settings, and a way to persist learned settings. */
export interface DriverContext {
  uuid: string;
  url: string;
  /** The type's settings (hostname, credentials, monitors, …) as given at add time or learned since. */
  config: Record<string, unknown>;
  /** Persists settings the driver learned (e.g. an SSH host key on first connect, a Ceph fsid). */
  saveConfig(patch: Record<string, unknown>): Promise<void>;
}

/** One backup-storage type: how to build its driver and which of its settings an inventory may show. */
export interface StorageTypeDef {
  /** ZStack's type string, e.g. "SftpBackupStorage", "Ceph". */
  type: string;
  create(ctx: DriverContext): BackupStorageDriver;
  /**
   * The ZStack class of this type's inventory, one the stock SDK maps (e.g.
   * org.zstack.storage.backup.sftp.SftpBackupStorageInventory); zimage-only types name the base class.
   */
  inventoryClass: string;
  /** Extra inventory fields of this type (never secrets), from its settings; `storage` is the row's own inventory. */
  inventoryFields?(config: Record<string, unknown>, storage: StorageInventoryBase): Record<string, unknown>;
}

/** What a type's extra inventory fields may refer to: the storage's uuid and dates as its inventory shows them. */
export interface StorageInventoryBase {
  uuid: string;
  createDate: string;
  lastOpDate: string;
}
