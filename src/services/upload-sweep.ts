import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ZStackError } from '../lib/errors.js';
import type { Upload, UploadRegistry } from './upload-registry.js';
import { LOCAL_STORAGE_TYPE } from './upload-resume.js';

export interface UploadLimits {
  /** An upload that received no bytes for this long is removed. */
  idleTimeoutMs: number;
  /** Finished uploads are remembered this long for GetUploadImageJobDetails. */
  keepFinishedMs: number;
  /** How long the sweep holds an upload it removes (as a PUT would). */
  leaseMs: number;
}

/**
 * Removes uploads that received no bytes for idleTimeoutMs (`remove` deletes rows and partial bytes, as a
 * failed add) and forgets finished ones after keepFinishedMs. Any node may sweep (an upload is taken under
 * its lease, so never while a PUT runs) but leaves another node's local-directory uploads to that node,
 * which alone has their bytes. Returns how many uploads were removed.
 */
export async function sweepUploads(
  uploads: UploadRegistry,
  limits: UploadLimits,
  now: number,
  remove: (u: Upload, why: ZStackError) => Promise<unknown>,
  log: Logger,
): Promise<number> {
  let removed = 0;
  await uploads.purge(now - limits.keepFinishedMs);
  for (const row of await uploads.idle(now - limits.idleTimeoutMs, now)) {
    const lease = randomBytes(12).toString('hex');
    if (!(await uploads.claimIdle(row.token, lease, now, limits.leaseMs))) continue;
    try {
      const u = await uploads.load(row);
      if (u.ownerNode !== uploads.nodeId && u.start.targets.some((t) => t.type === LOCAL_STORAGE_TYPE)) continue;
      const idle = Math.round((now - row.last_activity) / 1000);
      await remove(
        u,
        new ZStackError(
          'SYS.1006',
          `the upload of image[uuid:${u.start.imageUuid}, name:${u.start.imageName}] expired: no bytes for ${idle} s (limit ${Math.round(limits.idleTimeoutMs / 1000)} s); the image was removed`,
        ),
      );
      removed++;
    } catch (err) {
      log.warn({ err, image: row.image_uuid }, 'cannot remove an expired upload');
    } finally {
      await uploads.release(row.token, lease);
    }
  }
  return removed;
}
