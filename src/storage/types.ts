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
  /** Extra inventory fields of this type (never secrets), from its settings. */
  inventoryFields?(config: Record<string, unknown>): Record<string, unknown>;
}
