/**
 * The ZStack server-side class an inventory object stands for. ZStack's REST layer describes every reply
 * with a `schema` map (path → Java class) built from the reply's real objects; the SDKs use it to turn list
 * elements and subclasses into typed objects. zimage's inventories are plain objects, so each one is tagged
 * with its class where it is built, and `src/api/json-schema.ts` walks the reply and reads the tags.
 *
 * Only classes the stock SDK maps (its SourceClassMap) may be named: an unknown class, or a path to a field
 * the SDK class lacks, makes the SDK's ApiResult.getResult throw. A tag is not copied by spreading or JSON:
 * code that rebuilds an inventory tags the new object.
 */
export const INVENTORY_CLASS = {
  image: 'org.zstack.header.image.ImageInventory',
  imageBackupStorageRef: 'org.zstack.header.image.ImageBackupStorageRefInventory',
  backupStorage: 'org.zstack.header.storage.backup.BackupStorageInventory',
  sftpBackupStorage: 'org.zstack.storage.backup.sftp.SftpBackupStorageInventory',
  cephBackupStorage: 'org.zstack.storage.ceph.backup.CephBackupStorageInventory',
  cephBackupStorageMon: 'org.zstack.storage.ceph.backup.CephBackupStorageMonInventory',
  session: 'org.zstack.header.identity.SessionInventory',
  taskProgress: 'org.zstack.header.core.progress.TaskProgressInventory',
  uploadJobDetails: 'org.zstack.header.image.APIGetUploadImageJobDetailsReply$JobDetails',
  zone: 'org.zstack.header.zone.ZoneInventory',
  accessKey: 'org.zstack.accessKey.AccessKeyInventory',
  tag: 'org.zstack.header.tag.TagInventory',
  systemTag: 'org.zstack.header.tag.SystemTagInventory',
  userTag: 'org.zstack.header.tag.UserTagInventory',
} as const;

/**
 * Inventory fields whose Java type is an enum: ZStack's JsonSchemaBuilder names those too (`inventory.state`),
 * but a string cannot carry a tag, so they are listed here per inventory class.
 */
export const ENUM_FIELDS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  [INVENTORY_CLASS.accessKey]: { state: 'org.zstack.accessKey.AccessKeyState' },
};

const classes = new WeakMap<object, string>();

/** Tags `o` as an instance of the ZStack class `javaClass` and returns it. */
export function withClass<T extends object>(javaClass: string, o: T): T {
  classes.set(o, javaClass);
  return o;
}

/** The ZStack class `o` was tagged with, if any. */
export function classOf(o: unknown): string | undefined {
  return typeof o === 'object' && o !== null ? classes.get(o) : undefined;
}
