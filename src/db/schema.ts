/**
 * Row types of every table. Dates are epoch milliseconds, sizes are bytes, booleans are 0/1 integers so
 * SQLite and PostgreSQL share one code path.
 */
export interface AccountTable {
  uuid: string;
  name: string;
  password_hash: string;
  create_date: number;
  last_op_date: number;
}

export interface SessionTable {
  uuid: string;
  account_uuid: string;
  user_uuid: string;
  user_type: string;
  create_date: number;
  expired_date: number;
}

export interface BackupStorageTable {
  uuid: string;
  name: string;
  description: string | null;
  url: string;
  type: string;
  state: string;
  status: string;
  status_reason: string | null;
  total_capacity: number;
  available_capacity: number;
  /** Driver settings as JSON, secrets included: never returned by the API. */
  config: string;
  create_date: number;
  last_op_date: number;
  /** Local-directory storages: the node whose disk holds the directory. */
  owner_node?: string | null;
}

export interface ImageTable {
  uuid: string;
  name: string;
  description: string | null;
  state: string;
  status: string;
  size: number;
  actual_size: number;
  md5_sum: string | null;
  url: string;
  media_type: string;
  guest_os_type: string | null;
  type: string;
  platform: string | null;
  architecture: string | null;
  format: string;
  system: number;
  virtio: number | null;
  create_date: number;
  last_op_date: number;
}

export interface ImageBackupStorageRefTable {
  image_uuid: string;
  backup_storage_uuid: string;
  install_path: string;
  status: string;
  export_md5_sum: string | null;
  export_url: string | null;
  create_date: number;
  last_op_date: number;
  /** Set while the copy is Deleted (DeleteImage under Delay or Never). */
  deleted_date?: number | null;
  /** Direct, Delay or Never: the policy the copy was deleted under. */
  deletion_policy?: string | null;
}

/** Every digest ever computed, per (image, backup storage, algorithm): the latest one wins. */
export interface ImageDigestTable {
  image_uuid: string;
  backup_storage_uuid: string;
  algorithm: string;
  digest: string;
  /** 'import' (computed while the bytes were written) or 'calculate' (CalculateImageHash). */
  source: string;
  create_date: number;
}

/** Signed deltas of the image count per (state, status), appended by triggers: a count is their sum. */
export interface ImageTallyTable {
  state: string;
  status: string;
  n: number;
}

export interface TagTable {
  uuid: string;
  resource_uuid: string;
  resource_type: string;
  tag: string;
  /** 'System' or 'User'. */
  type: string;
  create_date: number;
  /** System tags only: 1 when the tag belongs to the resource itself and users cannot delete it (ZStack's `inherent`). */
  inherent?: number;
  last_op_date?: number | null;
}

/** AccessKeyVO. The secret is sealed with the server's secret key (it must be recoverable to verify signatures). */
export interface AccessKeyTable {
  uuid: string;
  account_uuid: string;
  user_uuid: string;
  access_key_id: string;
  secret: string;
  description: string | null;
  /** Enabled or Disabled. */
  state: string;
  create_date: number;
  last_op_date: number;
}

/** ZoneVO: in zimage a zone only groups backup storages. */
export interface ZoneTable {
  uuid: string;
  name: string;
  description: string | null;
  state: string;
  type: string;
  is_default: number;
  create_date: number;
  last_op_date: number;
}

/** BackupStorageZoneRefVO. */
export interface BackupStorageZoneRefTable {
  backup_storage_uuid: string;
  zone_uuid: string;
  create_date: number;
  last_op_date: number;
}

export interface ApiJobTable {
  uuid: string;
  api_name: string;
  /** Queued, Running, Succeeded, Failed. */
  state: string;
  /** Final HTTP body as JSON (result on success, {"error":…} on failure). */
  result: string | null;
  owner_node: string;
  resource_uuid: string | null;
  create_date: number;
  start_date: number | null;
  finish_date: number | null;
  deadline: number;
  bytes_done: number;
  bytes_total: number;
  /** Bytes per second over the job's working time. */
  throughput: number;
  web_hook: string | null;
  cancel_requested: number;
  /** 0: waiting in the cluster queue for any node to claim; else the owner's lease (epoch ms). */
  lease_until: number;
  /** Incremented at each claim: a node whose attempt is not the row's has lost the job (fencing). */
  attempt: number;
  /** 1: takes a heavy slot on the node that claims it; 2: 'shared' (its work takes the slot). */
  heavy: number;
  /** The sealed request (SecretBox) when the job can be redone by another node; null otherwise. */
  request: string | null;
  /** Only this node may claim the job (local-directory storages). */
  affinity_node: string | null;
  /** The node that ran the job before it died (set on take-over). */
  previous_node: string | null;
}

export interface NodeTable {
  id: string;
  address: string;
  version: string;
  started: number;
  last_seen: number;
}

export interface ClusterLeaseTable {
  name: string;
  holder: string;
  lease_until: number;
}

/** An AddImage upload:// in progress or recently ended (JSON in the text columns; see upload-state.ts). */
export interface UploadStateTable {
  token: string;
  image_uuid: string;
  image_name: string;
  job_uuid: string;
  url: string;
  storage_uuids: string;
  /** The storages' temporary names of the partial bytes, in storage_uuids order; null before the first byte. */
  temp_names: string | null;
  expected_digests: string;
  declared_format: string | null;
  state: string;
  /** Bytes received and stored (synced) by the PUTs so far. */
  received: number;
  total_size: number | null;
  size_limit: number;
  /** The ZStack error body of a failed upload. */
  error: string | null;
  /** The node that answered AddImage: a local-directory storage's partial bytes are on it. */
  owner_node: string;
  /** The PUT whose node holds running digests of exactly `received` bytes. */
  writer: string | null;
  /** The PUT writing now, until lease_until (renewed while it runs). */
  lease_holder: string | null;
  lease_until: number | null;
  last_activity: number;
  ended_date: number | null;
  create_date: number;
}

export interface Database {
  account: AccountTable;
  session: SessionTable;
  backup_storage: BackupStorageTable;
  image: ImageTable;
  image_backup_storage_ref: ImageBackupStorageRefTable;
  image_digest: ImageDigestTable;
  image_tally: ImageTallyTable;
  tag: TagTable;
  api_job: ApiJobTable;
  access_key: AccessKeyTable;
  zone: ZoneTable;
  backup_storage_zone_ref: BackupStorageZoneRefTable;
  node: NodeTable;
  cluster_lease: ClusterLeaseTable;
  upload_state: UploadStateTable;
}
