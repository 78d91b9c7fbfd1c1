import { ZStackError } from '../lib/errors.js';
import { checkBootModeTags } from './boot-mode-tags.js';
import { isKnownSystemTag, singleValuedName } from './system-tags.js';

/** ZStack's TagVO.tag column is varchar(2048): no longer tag is stored. */
export const TAG_MAX_LENGTH = 2048;

/** The index of the first C0 control, DEL or C1 control (the API layer refuses them in every string field), or -1. */
function controlAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return i;
  }
  return -1;
}

/** The text checks CreateSystemTag / CreateUserTag apply to their `tag` field, for a tag in `field` of `msgClass`. */
export function checkTagText(field: string, msgClass: string, tag: unknown): void {
  if (typeof tag !== 'string') throw new ZStackError('SYS.1007', `field[${field}] of message[${msgClass}] must be a list of strings`);
  const at = controlAt(tag);
  if (at >= 0) {
    const code = tag.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0');
    throw new ZStackError(
      'SYS.1007',
      `field[${field}] of message[${msgClass}] contains the control character U+${code} at position ${at}; remove it`,
    );
  }
  if (tag.length > TAG_MAX_LENGTH) {
    throw new ZStackError(
      'SYS.1007',
      `field[${field}] of message[${msgClass}] exceeds max length of string. expected was <= ${TAG_MAX_LENGTH}, actual was ${tag.length}`,
    );
  }
}

/** ZStack's answer to a second value of a single-valued system tag (its BootModeValidator's words). */
export const onlyOneError = (name: string, count: number): ZStackError =>
  new ZStackError('SYS.1007', `only one ${name} system tag is allowed, but ${count} got`);

/**
 * Tags given with a call that stores them on a `resourceType` resource (AddImage, AddBackupStorage,
 * CreateZone, …): the checks CreateSystemTag and CreateUserTag apply, with the same SYS.1007 answers.
 * System tags must be ZStack's for the type (`checksum::` from AddImage only), one value per single-valued
 * tag; boot modes must be ImageBootMode values. Throws before anything is stored.
 */
export function checkGivenTags(
  msgClass: string,
  resourceType: string,
  systemTags: readonly string[],
  userTags: readonly string[],
  opts: { addImage?: boolean } = {},
): void {
  for (const tag of userTags) checkTagText('userTags', msgClass, tag);
  const seen = new Map<string, Set<string>>();
  for (const tag of systemTags) {
    checkTagText('systemTags', msgClass, tag);
    if (!isKnownSystemTag(resourceType, tag, opts.addImage)) {
      throw new ZStackError('SYS.1007', `no system tag matches[${tag}] for resourceType[${resourceType}]`);
    }
    const name = singleValuedName(resourceType, tag);
    if (name === undefined) continue;
    const values = seen.get(name) ?? new Set<string>();
    values.add(tag);
    seen.set(name, values);
    if (values.size > 1 && name !== 'bootMode') throw onlyOneError(name, values.size);
  }
  if (resourceType === 'ImageVO') checkBootModeTags(systemTags);
}
