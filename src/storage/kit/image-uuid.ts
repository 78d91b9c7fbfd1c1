import { StorageError } from '../../lib/errors.js';

/** An image uuid every driver can use as a name: a file name, an RBD image name (no '/', '.', '@' or space). */
const IMAGE_UUID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/**
 * Refuses an image uuid that cannot serve as a stored name; `usableAs` says as what ('a file name', 'an RBD
 * image name') for the message.
 */
export function checkImageUuid(imageUuid: string, usableAs: string): void {
  if (typeof imageUuid !== 'string' || !IMAGE_UUID_RE.test(imageUuid)) {
    throw new StorageError(
      'invalid',
      `image uuid "${String(imageUuid)}" is not usable as ${usableAs} (letters, digits, '-' and '_' only).`,
    );
  }
}

/** Whether `name` is the temporary file name of an import of `imageUuid` (local and SFTP: `.<uuid>.template.<hex>.part`). */
export const isTempNameOf = (imageUuid: string, name: string): boolean =>
  typeof name === 'string' && name.startsWith(`.${imageUuid}.template.`) && /^\.[A-Za-z0-9_-]+\.template\.[0-9a-f]{12}\.part$/.test(name);
