import type { Stats } from 'node:fs';
import { hashFile } from '../hashing/engine.js';
import { abortErrorFor, throwIfAborted } from '../hashing/errors.js';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';
import { ZStackError } from '../lib/errors.js';
import { ImportSourceError, openVerifiedFile, type ImportPolicy } from '../sources/index.js';
import type { BackupStorageDriver, FileImportTarget, ImportTarget } from '../storage/driver.js';

/*
 * AddImage of a local file into a storage whose own tool can read the file (Ceph: rbd import /dev/fd/3):
 * the verified descriptor is handed to that tool, and zimage's hashing engine reads the same inode in
 * parallel (its own descriptor through /proc/self/fd, MD5 and SHA-256 in worker threads). No byte of the
 * image passes through Node's streams. The file must not change meanwhile: fstat before and after.
 */

export interface DirectFileTarget {
  uuid: string;
  name: string;
  driver: BackupStorageDriver;
  available: number;
}

export interface DirectFileImport {
  url: string;
  policy: ImportPolicy;
  target: DirectFileTarget;
  imageUuid: string;
  algorithms: readonly DigestAlgorithm[];
  signal: AbortSignal;
  progress(done: number, total: number): void;
  /** The started import is pushed here at once, so the caller's rollback removes it on any failure. */
  imports: ImportTarget[];
}

/** True when the url is a local file and the (single) storage can read one itself. */
export function directFileImportApplies(url: string, targets: readonly { driver: BackupStorageDriver }[]): boolean {
  return targets.length === 1 && typeof targets[0]!.driver.importFromFile === 'function' && (url.startsWith('/') || /^file:/i.test(url));
}

/** The fields that change when a file is written, truncated or replaced in place. */
function sameFile(a: Stats, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
}

/** Rejects (an AbortError) when the signal aborts, else settles as `p` does. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(abortErrorFor(signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Stores and hashes a local file in one pass of each reader. Errors: ImportSourceError (the file), ZStackError
 * (empty, no room), StorageError (the storage), the signal's reason (cancel). The import is left uncommitted.
 */
export async function importFileDirect(o: DirectFileImport): Promise<{ digests: DigestResult; bytes: number }> {
  const file = await openVerifiedFile(o.url, o.policy, { signal: o.signal });
  const { handle, size } = file;
  try {
    const before = await handle.stat();
    if (size === 0) {
      throw new ZStackError(
        'SYS.1007',
        `the image is empty: ${file.displayUrl} has 0 bytes; check the url (for a file, that it is the image and not an empty placeholder)`,
      );
    }
    const t = o.target;
    if (size > t.available) {
      throw new ZStackError(
        'SYS.1006',
        `the image is ${size} bytes but backup storage[uuid:${t.uuid}, name:${t.name}] has only ${t.available} bytes available; free space or choose another backup storage`,
      );
    }
    throwIfAborted(o.signal);
    const imp: FileImportTarget = await t.driver.importFromFile!(o.imageUuid, handle.fd, size);
    o.imports.push(imp);
    o.progress(0, size);
    // Either reader failing stops the other: a failed rbd stops the hashing, a failed hash stops rbd.
    const stop = new AbortController();
    imp.stored.catch((err: unknown) => stop.abort(err));
    const hashing = hashFile(`/proc/self/fd/${handle.fd}`, {
      algorithms: o.algorithms,
      end: size,
      signal: AbortSignal.any([o.signal, stop.signal]),
      onProgress: (n) => o.progress(n, size),
    });
    hashing.catch(() => void imp.abort().catch(() => undefined));
    const [hashed, stored] = await Promise.allSettled([hashing, untilAborted(imp.stored, o.signal)]);
    throwIfAborted(o.signal);
    if (stored.status === 'rejected') throw stored.reason;
    if (hashed.status === 'rejected') throw hashed.reason;
    const after = await handle.stat();
    if (!sameFile(before, after)) {
      throw new ImportSourceError(
        'truncated',
        `file ${file.path} changed while it was being imported (size ${before.size} → ${after.size}, modified ${new Date(after.mtimeMs).toISOString()}); nothing was added, retry when nothing writes to it.`,
      );
    }
    return { digests: hashed.value, bytes: size };
  } finally {
    await handle.close().catch(() => undefined);
  }
}
