import { ZStackError } from '../lib/errors.js';

/**
 * The AddImage operations this process is running (URL downloads and pending uploads), by image uuid.
 * DeleteImage on a Downloading image removes its rows and stops the add here, as ZStack does: the add
 * then fails with SYS.1006 `image [uuid:…] has been deleted` and leaves no bytes behind.
 */
export class AddsInFlight {
  private readonly stops = new Map<string, (reason: ZStackError) => unknown>();

  /** Registers how to stop the add of `imageUuid`; the returned function unregisters it. */
  register(imageUuid: string, stop: (reason: ZStackError) => unknown): () => void {
    this.stops.set(imageUuid, stop);
    return () => {
      if (this.stops.get(imageUuid) === stop) this.stops.delete(imageUuid);
    };
  }

  /** Stops the add of a deleted image, if this process runs it (another node notices when it commits). */
  async stop(imageUuid: string): Promise<void> {
    const stop = this.stops.get(imageUuid);
    this.stops.delete(imageUuid);
    await stop?.(deletedWhileAdding(imageUuid));
  }
}

/** ZStack's error for an add whose image was deleted meanwhile (ImageManagerImpl). */
export const deletedWhileAdding = (imageUuid: string): ZStackError =>
  new ZStackError('SYS.1006', `image [uuid:${imageUuid}] has been deleted`);
