import type { Readable, Writable } from 'node:stream';
import type { ByteSource } from '../formats/byte-source.js';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';

export interface Capacity {
  totalCapacity: number;
  availableCapacity: number;
}

/** A ByteSource that holds a handle (file descriptor, SFTP handle, RBD image) until closed. */
export interface OpenByteSource extends ByteSource {
  close(): Promise<void>;
}

/**
 * Bytes of a new image on their way into the storage. They are written under a temporary name; commit()
 * makes them visible under `installPath`, abort() removes every trace.
 */
export interface ImportTarget {
  readonly installPath: string;
  readonly stream: Writable;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * An import whose partial bytes outlive their writer (uploads that continue on another node): suspend()
 * syncs them and releases the writer, and resumeImport, in any process that reaches the storage, appends.
 */
export interface ResumableImport extends ImportTarget {
  /** The partial bytes' temporary file name (no directory): what resumeImport needs to find them again. */
  readonly tempName: string;
  /** Writes out and syncs the bytes so far and releases the writer; the partial bytes stay for resumeImport. */
  suspend(): Promise<void>;
  /** Streams the partial bytes that were there when this writer started (the offset it resumed at). */
  readBefore(): Promise<Readable>;
}

export const isResumable = (i: ImportTarget): i is ResumableImport => typeof (i as Partial<ResumableImport>).suspend === 'function';

/**
 * An import whose writer reads a local file itself (importFromFile): its stream takes no bytes, `stored`
 * settles when the storage holds every byte (or rejects with the writer's failure). commit()/abort() as usual;
 * abort() also stops the writer.
 */
export interface FileImportTarget extends ImportTarget {
  readonly stored: Promise<void>;
}

export interface CopyStat {
  size: number;
  /** Modification time in ms since the epoch; absent where the storage has none to give cheaply. */
  mtimeMs?: number;
}

export interface HashOptions {
  signal?: AbortSignal;
  /** Called with the bytes hashed so far. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

/**
 * One backup storage. A driver knows its storage only: never the database, never HTTP. Errors are
 * StorageError with a reason a user can act on.
 */
export interface BackupStorageDriver {
  readonly type: string;
  /** Checks the storage is reachable and usable (exists, writable, tools present) and reports capacity. */
  connect(): Promise<Capacity>;
  /** Starts writing a new image. */
  createImport(imageUuid: string, opts?: { expectedSize?: number }): Promise<ImportTarget>;
  /**
   * Reopens the partial bytes a suspended import left under `tempName`, to append at `offset` (bytes past it
   * are dropped; fewer is an error). Absent: an import lives only in the process that created it.
   */
  resumeImport?(imageUuid: string, tempName: string, offset: number): Promise<ResumableImport>;
  /**
   * Optional: starts an import whose writer reads the first `size` bytes of the open regular file `fd`
   * itself (the storage's own tool, handed the descriptor), so no byte passes through Node. The caller keeps
   * `fd` open until `stored` settles and checks the file did not change meanwhile.
   */
  importFromFile?(imageUuid: string, fd: number, size: number): Promise<FileImportTarget>;
  /** Random access to a stored image's bytes, for the format inspector. */
  open(installPath: string): Promise<OpenByteSource>;
  /** Streams a stored image's bytes (optionally a range, inclusive end as in fs.createReadStream). */
  readStream(installPath: string, opts?: { start?: number; end?: number; signal?: AbortSignal }): Promise<Readable>;
  /**
   * The stored image's length and, where the storage keeps one, its modification time: a cheap way to see
   * that the bytes changed since they were last inspected. Optional: without it, callers re-inspect.
   */
  stat?(installPath: string): Promise<CopyStat>;
  /** Bytes the image occupies on the storage (st_blocks × 512 for files). */
  allocatedSize(installPath: string): Promise<number>;
  /** Removes a stored image; a missing one is not an error. */
  delete(installPath: string): Promise<void>;
  /** Removes every byte stored for an image, committed or partial (recovery after a crash mid-import). */
  discard(imageUuid: string): Promise<void>;
  /**
   * Removes only the partial (uncommitted) bytes of an image, leaving a committed copy alone: retried after a
   * take-over when the dead node's partial could not be removed at once (Ceph keeps a dead client's watch on
   * the image for osd_client_watch_timeout).
   */
  discardPartials?(imageUuid: string): Promise<void>;
  /** Computes digests near the data, reading every byte once. */
  hash(installPath: string, algorithms: readonly DigestAlgorithm[], opts?: HashOptions): Promise<DigestResult>;
  /** Releases connections and handles. */
  close(): Promise<void>;
}
