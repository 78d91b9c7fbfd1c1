import { finished } from 'node:stream/promises';
import type { Logger } from 'pino';
import { MultiDigest } from '../hashing/engine.js';
import { Refusal, StorageError, ZStackError } from '../lib/errors.js';
import { isResumable, type ImportTarget } from '../storage/driver.js';
import { IMPORT_DIGESTS } from './image-constants.js';
import type { Upload, UploadRegistry } from './upload-registry.js';
import { jsonList, type UploadRow } from './upload-state.js';

/** BackupStorageTable.type of a local directory: its partial bytes are on the node that has the directory. */
export const LOCAL_STORAGE_TYPE = 'LocalBackupStorage';

/** The PUT reached a node that cannot continue this upload (misdirected); the upload itself is fine on its own node. */
const bound = (u: Upload, why: string): Refusal =>
  new Refusal(
    'misdirected',
    `the upload of image[uuid:${u.start.imageUuid}] can only continue on zimage node [${u.ownerNode}], which answered AddImage: ${why}; send the remaining bytes to that node (load balancer affinity for local-directory backup storages)`,
    u.offset,
  );

/**
 * Makes u.imports and u.md ready for a PUT at u.offset. A storage that can resume an import (resumeImport)
 * continues the partial bytes the database names, whichever node wrote them; one that cannot keeps its import
 * open in the memory of the node that began it. Running digests the node does not hold (the last PUT ran
 * elsewhere, or this node restarted) are rebuilt once by re-reading the stored bytes.
 */
export async function openUploadImports(u: Upload, row: UploadRow, uploads: UploadRegistry, log: Logger): Promise<void> {
  const { start } = u;
  if (u.imports.length > 0) return; // kept open between PUTs on this node
  const resumable = start.targets.every((t) => typeof t.driver.resumeImport === 'function');
  const here = u.ownerNode === uploads.nodeId;
  if (!resumable && !here) {
    throw bound(u, `backup storage [${start.targets.map((t) => t.name).join(', ')}] keeps an unfinished upload in that node's memory`);
  }
  const names = jsonList(row.temp_names);
  if (names.length === 0) {
    if (u.offset > 0) {
      throw new ZStackError(
        'SYS.1006',
        `the ${u.offset} bytes received so far were held by an earlier run of zimage node [${u.ownerNode}] and cannot be continued; add the image again`,
      );
    }
    for (const t of start.targets) u.imports.push(await t.driver.createImport(start.imageUuid, { expectedSize: u.total }));
    if (resumable) {
      const temp_names = JSON.stringify(u.imports.map((i) => (isResumable(i) ? i.tempName : '')));
      await uploads.progress(u, u.lease!, { temp_names, state: 'Running' });
    }
  } else {
    for (const [n, t] of start.targets.entries()) {
      try {
        u.imports.push(await t.driver.resumeImport!(start.imageUuid, names[n]!, u.offset));
      } catch (err) {
        const missing = err instanceof StorageError && (err.kind === 'unreachable' || err.kind === 'not-found');
        if (!here && t.type === LOCAL_STORAGE_TYPE && missing) {
          await releaseAll(u.imports);
          u.imports = [];
          throw bound(u, `its backup storage[name:${t.name}] is a local directory that is not on this node`);
        }
        throw err;
      }
    }
  }
  if (u.md && u.writer !== undefined && u.writer === row.writer && u.md.bytesHashed === u.offset) return;
  u.md?.destroy();
  u.md = new MultiDigest(IMPORT_DIGESTS);
  u.writer = undefined;
  if (u.offset === 0) return;
  const first = u.imports[0]!;
  if (!isResumable(first)) throw new StorageError('invalid', 'the stored bytes of this upload cannot be read back');
  const began = Date.now();
  for await (const chunk of await first.readBefore()) await u.md.update(chunk as Buffer);
  if (u.md.bytesHashed !== u.offset) {
    throw new StorageError('io', `re-reading the stored bytes of the upload gave ${u.md.bytesHashed} bytes, not the ${u.offset} recorded`);
  }
  log.info(
    { image: start.imageUuid, bytes: u.offset, ms: Date.now() - began },
    'upload continued here: running digests rebuilt from the stored bytes',
  );
}

/**
 * A PUT ends short of the last byte: on storages that can resume, the imports sync their bytes and let go,
 * so that the next PUT may continue on any node; others stay open in this process.
 */
export async function suspendImports(u: Upload): Promise<void> {
  if (!u.imports.every(isResumable)) return;
  await endSink(u);
  for (const i of u.imports) await i.suspend();
  u.imports = [];
  u.sink = undefined;
}

/** Ends the PUT's sink and waits until every byte reached the imports' streams (a fan-out buffers some). */
export async function endSink(u: Upload): Promise<void> {
  const sink = u.sink;
  if (!sink || sink.writableFinished) return;
  if (!sink.writableEnded) sink.end();
  await finished(sink);
}

/** Lets go of resumed imports without touching their bytes (they belong to the node that has them). */
async function releaseAll(imports: ImportTarget[]): Promise<void> {
  for (const i of imports) if (isResumable(i)) await i.suspend().catch(() => undefined);
}
