import { ZStackError } from '../lib/errors.js';

/** ZStack's ImageBootMode values. */
export const BOOT_MODES = ['Legacy', 'UEFI', 'UEFI_WITH_CSM'] as const;
const PREFIX = 'bootMode::';

/**
 * ImageManagerImpl's BootModeValidator for a create API's system tags: at most one `bootMode::<mode>` tag,
 * and its mode one of ImageBootMode (any case). SYS.1007 otherwise.
 */
export function checkBootModeTags(systemTags: readonly string[]): void {
  let count = 0;
  for (const tag of systemTags) {
    if (!tag.startsWith(PREFIX)) continue;
    if (++count > 1) throw new ZStackError('SYS.1007', `only one bootMode system tag is allowed, but ${count} got`);
    const mode = tag.slice(PREFIX.length);
    if (!BOOT_MODES.some((m) => m.toLowerCase() === mode.toLowerCase())) {
      throw new ZStackError('SYS.1007', `[${mode}] specified in system tag [${tag}] is not a valid boot mode`);
    }
  }
}
