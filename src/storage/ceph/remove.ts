import type { StorageError } from '../../lib/errors.js';
import { ERRNO } from './errors.js';
import { HelperError, type RadosHelper } from './helper.js';

/** How long a removal waits for a killed rbd's watch to go (osd_client_watch_timeout is 30 s). */
const EVICT_WAIT_MS = 45_000;

/**
 * Removes an RBD image through the helper. `evict`: first blocklist the clients still watching it (a killed
 * rbd of ours), whose watch would otherwise block the removal for ~30 s; without the rights for that, plain
 * removal is retried until the dead watch expires. Returns whether an image was there.
 */
export async function removeRbdImage(
  helper: RadosHelper,
  name: string,
  evict: boolean,
  fail: (err: unknown) => StorageError,
): Promise<boolean> {
  if (!evict) {
    try {
      return (await helper.call<{ removed: boolean }>('remove', { image: name })).r.removed;
    } catch (err) {
      throw fail(err);
    }
  }
  const until = Date.now() + EVICT_WAIT_MS;
  for (;;) {
    try {
      return (await helper.call<{ removed: boolean }>('remove', { image: name, evict: true })).r.removed;
    } catch (err) {
      const waitable = err instanceof HelperError && ([ERRNO.EBUSY, ERRNO.EPERM, ERRNO.EACCES] as number[]).includes(err.errno);
      if (Date.now() > until || !waitable) throw fail(err);
      await new Promise((r) => setTimeout(r, 2000));
      const plain = await helper.call<{ removed: boolean }>('remove', { image: name }).catch(() => undefined);
      if (plain) return plain.r.removed;
    }
  }
}
