/**
 * The system tags ZStack defines for the resources zimage keeps (ImageSystemTags, BackupStorageSystemTags,
 * ZoneSystemTags). CreateSystemTag, UpdateSystemTag and the tags given with other calls accept only these, as
 * ZStack's TagManager does. zimage's own `checksum::<algorithm>::<hex>` is accepted from AddImage alone,
 * which verifies it: put on later, it would claim a digest nobody checked.
 */
const SYSTEM_TAG_FORMATS: Record<string, readonly string[]> = {
  ImageVO: [
    'bootMode::{bootMode}',
    'qemuga',
    'remote',
    'sourceType::{sourceType}',
    'CreatedBySystem',
    'temporary',
    'GuestTools::{guestToolsVersion}',
    'buildapp::{buildapp}',
    'packer',
    'applianceType::{applianceType}',
    'marketplace::true',
  ],
  BackupStorageVO: [
    'backupStorage::data::network::cidr::{backupStorageDataNetwork}',
    'extraips::{extraips}',
    'iscsiInitiatorName::{iscsiInitiatorName}',
  ],
  ZoneVO: ['host::reservedCpu::{capacity}', 'host::reservedMemory::{capacity}'],
};

/** ZStack's TagUtils.isMatch: same number of `::` segments, literal segments equal, `{token}` segments anything. */
export function matchesTagFormat(format: string, tag: string): boolean {
  if (!format.includes('::')) return format === tag;
  const f = format.split('::');
  const t = tag.split('::');
  if (f.length !== t.length) return false;
  return f.every((seg, i) => (seg.startsWith('{') && seg.endsWith('}')) || seg === t[i]);
}

/** The system tags only AddImage takes (and checks): see image-add.ts and expectedChecksums. */
const ADD_IMAGE_FORMATS: readonly string[] = ['checksum::{algorithm}::{digest}'];

const formatsOf = (resourceType: string, addImage: boolean): readonly string[] => [
  ...(SYSTEM_TAG_FORMATS[resourceType] ?? []),
  ...(addImage && resourceType === 'ImageVO' ? ADD_IMAGE_FORMATS : []),
];

export const isKnownSystemTag = (resourceType: string, tag: string, addImage = false): boolean =>
  formatsOf(resourceType, addImage).some((format) => matchesTagFormat(format, tag));

/**
 * The name of the single-valued system tag `tag` is (e.g. `bootMode` for `bootMode::UEFI`), or undefined.
 * A patterned tag of ZStack's (one `{token}` value) holds one value per resource: ZStack replaces it, never
 * adds a second one.
 */
export function singleValuedName(resourceType: string, tag: string): string | undefined {
  const format = (SYSTEM_TAG_FORMATS[resourceType] ?? []).find((f) => matchesTagFormat(f, tag));
  if (!format?.includes('::{')) return undefined;
  return format.slice(0, format.indexOf('::{'));
}
