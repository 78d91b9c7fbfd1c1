/*
 * The reusable parts of the OpenAPI document: ZStack's reply shapes (inventories, ErrorCode, the 202 job
 * answer) as JSON Schema 2020-12 components, the two security schemes, and which reply each API answers.
 * Field lists follow what zimage writes (src/services/inventory.ts and the storage drivers); ZStack's
 * serialiser omits null fields, so no field is marked required.
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const int = (description: string): Schema => ({ type: 'integer', format: 'int64', description });
const bool = (description: string): Schema => ({ type: 'boolean', description });
const date = (description: string): Schema => ({
  type: 'string',
  description: `${description} (Java's medium US format, server local time, e.g. "Aug 23, 2022 4:31:36 PM")`,
});
const obj = (description: string, properties: Record<string, Schema>): Schema => ({ type: 'object', description, properties });
const list = (items: Schema): Schema => ({ type: 'array', items });

const uuid = str('Resource UUID (32 hex digits, no dashes)', { pattern: '^[0-9a-f]{32}$' });
const dates = { createDate: date('Creation time'), lastOpDate: date('Last modification time') };

const backupStorageFields: Record<string, Schema> = {
  uuid,
  name: str('Name'),
  url: str('Where the storage keeps images: a directory, an SFTP path or a Ceph pool'),
  description: str('Description'),
  totalCapacity: int('Total bytes'),
  availableCapacity: int('Bytes available'),
  type: str('Storage type', { enum: ['LocalBackupStorage', 'SftpBackupStorage', 'Ceph'] }),
  state: str('Administrative state', { enum: ['Enabled', 'Disabled'] }),
  status: str('Connection status', { enum: ['Connecting', 'Connected', 'Disconnected'] }),
  statusReason: str('zimage extension: why the storage is Disconnected'),
  attachedZoneUuids: list(str('Zone UUID')),
  ...dates,
};

/** Inventories and envelopes, by component name. */
export const COMPONENT_SCHEMAS: Record<string, Schema> = {
  ErrorCode: obj("ZStack's ErrorCode: the reason a call failed", {
    code: str('Globally unique error code, e.g. SYS.1007, ID.1001, BS.1000'),
    description: str('Brief description of the error code'),
    details: str('What happened and what to fix'),
    elaboration: str('Reserved'),
    location: str('Where the error was raised'),
    cost: str('Reserved'),
    opaque: { type: 'object', description: 'Extra data (reserved)' },
    cause: ref('ErrorCode'),
  }),
  ErrorReply: { ...obj('A failed call (HTTP 503, or the result of a failed job)', { error: ref('ErrorCode') }), required: ['error'] },
  AsyncAccepted: {
    ...obj('The job was accepted and has not finished within the wait window: poll `location` (GET /zstack/v1/api-jobs/{uuid})', {
      location: str('URL of the job: GET it until it answers 200 (result) or 503 (error)', { format: 'uri' }),
      apiTimeout: int('Job timeout in milliseconds'),
    }),
    required: ['location'],
  },
  EmptyReply: obj('Success without a payload (JSON `{}`)', {}),
  ImageBackupStorageRefInventory: obj('One copy of an image on one backup storage', {
    imageUuid: str('Image UUID'),
    backupStorageUuid: str('Backup storage UUID'),
    installPath: str('Where the copy is stored on the backup storage'),
    status: str('Status of the copy', { enum: ['Downloading', 'Ready'] }),
    exportUrl: str('URL of the exported image, if exported'),
    exportMd5Sum: str('MD5 of the exported file'),
    ...dates,
  }),
  ImageInventory: obj('An image', {
    uuid,
    name: str('Name'),
    description: str('Description'),
    state: str('Administrative state', { enum: ['Enabled', 'Disabled'] }),
    status: str('Lifecycle status', { examples: ['Downloading', 'Ready', 'Deleted'] }),
    size: int('Virtual size in bytes (from the format header)'),
    actualSize: int('Bytes allocated on the backup storage'),
    md5Sum: str('Hex digest of the image (MD5 by default; CalculateImageHash may store another algorithm)'),
    url: str('Where the image was added from'),
    mediaType: str('Media type', { enum: ['RootVolumeTemplate', 'DataVolumeTemplate', 'ISO'] }),
    guestOsType: str('Guest operating system'),
    type: str('Image type (zstack)'),
    platform: str('Platform', { examples: ['Linux', 'Windows', 'Other'] }),
    architecture: str('CPU architecture', { examples: ['x86_64', 'aarch64'] }),
    format: str('Disk format', { examples: ['qcow2', 'raw', 'iso', 'vmdk', 'vhd'] }),
    system: bool('System image'),
    virtio: bool('Virtio drivers present'),
    ...dates,
    backupStorageRefs: list(ref('ImageBackupStorageRefInventory')),
  }),
  BackupStorageInventory: obj('A backup storage (LocalBackupStorage; the typed ones add fields)', backupStorageFields),
  SftpBackupStorageInventory: obj('An SFTP backup storage', {
    ...backupStorageFields,
    hostname: str('SSH host'),
    username: str('SSH user'),
    sshPort: { type: 'integer', description: 'SSH port', default: 22 },
    hostKeyFingerprint: str('zimage extension: the pinned SSH host key (SHA256:…)'),
  }),
  CephBackupStorageMonInventory: obj('A Ceph monitor of a Ceph backup storage', {
    hostname: str('Monitor host'),
    monPort: { type: 'integer', description: 'Monitor port', default: 6789 },
    monAddr: str('Monitor address'),
    monUuid: str('Monitor UUID'),
    backupStorageUuid: str('Backup storage UUID'),
    status: str('Monitor status', { enum: ['Connecting', 'Connected', 'Disconnected'] }),
    ...dates,
  }),
  CephBackupStorageInventory: obj('A Ceph backup storage', {
    ...backupStorageFields,
    fsid: str('Ceph cluster fsid'),
    poolName: str('RBD pool holding the images'),
    poolAvailableCapacity: int('Bytes available in the pool'),
    poolUsedCapacity: int('Bytes used in the pool'),
    poolReplicatedSize: { type: 'integer', description: 'Pool replication size' },
    poolDiskUtilization: { type: 'number', description: '1 / replicated size' },
    poolSecurityPolicy: str('Pool security policy', { enum: ['Copy'] }),
    mons: list(ref('CephBackupStorageMonInventory')),
  }),
  AnyBackupStorageInventory: {
    description: 'A backup storage of any type',
    anyOf: [ref('BackupStorageInventory'), ref('SftpBackupStorageInventory'), ref('CephBackupStorageInventory')],
  },
  SessionInventory: obj('A login session: send its uuid as `Authorization: OAuth <uuid>`', {
    uuid,
    accountUuid: str('Account UUID'),
    userUuid: str('User UUID'),
    userType: str('User type'),
    expiredDate: date('When the session expires'),
    createDate: date('Creation time'),
    noSessionEvaluation: bool('Reserved'),
  }),
  TaskProgressInventory: obj("Progress of a running job (GetTaskProgress); zimage's `opaque` carries bytes and rate", {
    taskUuid: str('Job UUID'),
    taskName: str('API name'),
    type: str('Progress'),
    content: str('Percent done, as a string'),
    time: int('Epoch milliseconds'),
    opaque: obj('zimage extension', {
      state: str('Job state', { enum: ['Queued', 'Running', 'Succeeded', 'Failed', 'Cancelled'] }),
      bytesDone: int('Bytes processed'),
      bytesTotal: int('Bytes to process'),
      bytesPerSecond: { type: 'number', description: 'Throughput' },
      node: str('The zimage node holding the job (empty while it waits in the cluster queue)'),
      previousNode: str('The node that ran it before it died (the job was taken over)'),
    }),
  }),
  ZoneInventory: obj('A zone', {
    uuid,
    name: str('Name'),
    description: str('Description'),
    state: str('State', { enum: ['Enabled', 'Disabled'] }),
    type: str('Zone type', { enum: ['zstack'] }),
    isDefault: bool('Default zone'),
    ...dates,
  }),
  AccessKeyInventory: obj('An access key for signed requests (`Authorization: ZStack <AccessKeyID>:<signature>`)', {
    uuid,
    description: str('Description'),
    accountUuid: str('Account UUID'),
    userUuid: str('User UUID'),
    AccessKeyID: str('Key id, sent in the Authorization header'),
    AccessKeySecret: str('The secret: returned once, by CreateAccessKey'),
    state: str('State', { enum: ['Enabled', 'Disabled'] }),
    ...dates,
  }),
  TagInventory: obj('A system or user tag attached to a resource', {
    uuid,
    resourceUuid: str('Resource UUID'),
    resourceType: str('Resource type', { examples: ['ImageVO', 'BackupStorageVO', 'ZoneVO'] }),
    tag: str('Tag text'),
    type: str('Kind of tag', { enum: ['System', 'User'] }),
    ...dates,
  }),
};

const single = (inventory: string): Schema => ({ type: 'object', properties: { inventory: ref(inventory) } });
const many = (inventory: string): Schema => ({
  type: 'object',
  properties: { inventories: list(ref(inventory)), total: int('Total matches (with count=true or replyWithCount=true)') },
});

const IMAGE = single('ImageInventory');
const BS = single('AnyBackupStorageInventory');
const EMPTY = ref('EmptyReply');

/** The 200 reply of each API; APIs not listed are documented as a JSON object (see their description). */
export const REPLIES: Record<string, Schema> = {
  AddImage: IMAGE,
  SyncImageSize: IMAGE,
  CalculateImageHash: IMAGE,
  UpdateImage: IMAGE,
  ChangeImageState: IMAGE,
  RecoverImage: IMAGE,
  SetImageBootMode: EMPTY,
  QueryImage: many('ImageInventory'),
  DeleteImage: EMPTY,
  ExpungeImage: EMPTY,
  AddLocalBackupStorage: single('BackupStorageInventory'),
  AddSftpBackupStorage: single('SftpBackupStorageInventory'),
  AddCephBackupStorage: single('CephBackupStorageInventory'),
  UpdateBackupStorage: BS,
  ChangeBackupStorageState: BS,
  ReconnectBackupStorage: BS,
  ReconnectSftpBackupStorage: single('SftpBackupStorageInventory'),
  UpdateSftpBackupStorage: single('SftpBackupStorageInventory'),
  QueryBackupStorage: many('AnyBackupStorageInventory'),
  QueryLocalBackupStorage: many('BackupStorageInventory'),
  QuerySftpBackupStorage: many('SftpBackupStorageInventory'),
  QueryCephBackupStorage: many('CephBackupStorageInventory'),
  GetCandidateBackupStorageForCreatingImage: many('AnyBackupStorageInventory'),
  DeleteBackupStorage: EMPTY,
  LogInByAccount: single('SessionInventory'),
  RenewSession: single('SessionInventory'),
  LogOut: EMPTY,
  ValidateSession: { type: 'object', properties: { valid: bool('Whether the session is valid') } },
  GetTaskProgress: many('TaskProgressInventory'),
  CancelLongJob: EMPTY,
  CreateZone: single('ZoneInventory'),
  UpdateZone: single('ZoneInventory'),
  ChangeZoneState: single('ZoneInventory'),
  QueryZone: many('ZoneInventory'),
  DeleteZone: EMPTY,
  AttachBackupStorageToZone: BS,
  DetachBackupStorageFromZone: BS,
  CreateAccessKey: single('AccessKeyInventory'),
  ChangeAccessKeyState: single('AccessKeyInventory'),
  QueryAccessKey: many('AccessKeyInventory'),
  DeleteAccessKey: EMPTY,
  CreateSystemTag: single('TagInventory'),
  CreateUserTag: single('TagInventory'),
  UpdateSystemTag: single('TagInventory'),
  QueryTag: many('TagInventory'),
  QuerySystemTag: many('TagInventory'),
  QueryUserTag: many('TagInventory'),
  DeleteTag: EMPTY,
  GetBackupStorageCapacity: {
    type: 'object',
    properties: { totalCapacity: int('Total bytes of the storages asked for'), availableCapacity: int('Bytes available') },
  },
  GetBackupStorageTypes: { type: 'object', properties: { types: list(str('Backup storage type')) } },
  GetImageDigests: {
    type: 'object',
    properties: {
      inventories: list(
        obj('A digest recorded for an image copy', {
          imageUuid: str('Image UUID'),
          backupStorageUuid: str('Backup storage UUID'),
          algorithm: str('Digest algorithm', { examples: ['MD5', 'SHA256'] }),
          digest: str('Hex digest'),
          source: str('How the digest was obtained', { enum: ['import', 'calculate'] }),
          createDate: str('When it was recorded (ISO 8601)', { format: 'date-time' }),
        }),
      ),
    },
  },
  GetZImageNodes: {
    type: 'object',
    properties: {
      inventories: list(
        obj('A zimage node sharing this database', {
          id: str('Node id (ZIMAGE_NODE_ID, default <host>-<pid>-<random>)'),
          address: str('Where the node serves (its public URL)'),
          version: str('zimage version'),
          state: str('Alive while its heartbeat is within the lease', { enum: ['Alive', 'Dead'] }),
          self: { type: 'boolean', description: 'The node that answered' },
          periodicWork: { type: 'boolean', description: 'Runs the periodic work (storage ping, expunger, job retention)' },
          started: str('When it started (ISO 8601)', { format: 'date-time' }),
          lastHeartbeat: str('Its last heartbeat (ISO 8601)', { format: 'date-time' }),
          runningJobs: list(
            obj('An unfinished job it holds', { uuid: str('Job uuid'), apiName: str('API'), state: str('Queued or Running') }),
          ),
        }),
      ),
    },
  },
  GetUploadImageJobDetails: {
    type: 'object',
    properties: {
      existingJobDetails: list(
        obj('An upload in progress', {
          longJobUuid: str('The AddImage job'),
          longJobState: str('Upload state'),
          imageUuid: str('Image UUID'),
          imageUploadUrl: str('Where to PUT the bytes (PUT /zimage/v1/uploads/{token})'),
          offset: int('Bytes received so far: resume from here'),
          totalSize: int('zimage extension: the declared size'),
          error: ref('ErrorCode'),
        }),
      ),
    },
  },
  ExportImageFromBackupStorage: {
    type: 'object',
    properties: {
      imageUrl: str('Download URL of the exported image (GET /zimage/v1/exports/{token}/{file})'),
      exportMd5Sum: str('MD5 of the exported file'),
    },
  },
  DeleteExportedImageFromBackupStorage: EMPTY,
};

export const replyOf = (apiName: string): Schema => REPLIES[apiName] ?? { type: 'object', description: `The reply of ${apiName}` };

export const SECURITY_SCHEMES: Record<string, Schema> = {
  OAuth: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description:
      'A session: log in with `PUT /zstack/v1/accounts/login` (`{"logInByAccount": {"accountName": …, "password": <SHA-512 hex of the password>}}`) and send the inventory uuid as `Authorization: OAuth <session uuid>` — enter the whole value, `OAuth ` included. The login form above does this for you.',
  },
  AccessKey: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description:
      "An access key (CreateAccessKey): `Authorization: ZStack <AccessKeyID>:<signature>` with a `Date` header (RFC 1123, within 15 minutes of the server's clock). The signature is base64(HMAC-SHA1(AccessKeySecret, `<METHOD>\\n<Date>\\n<path below /zstack, e.g. /v1/images>`)), as ZStack's SDKs compute it. Each request needs a fresh signature, so this page cannot send it.",
  },
};
