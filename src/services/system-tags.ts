/**
 * The system tags ZStack defines for the resources zimage keeps (ImageSystemTags, BackupStorageSystemTags,
 * ZoneSystemTags), plus zimage's `checksum::<algorithm>::<hex>` for AddImage. CreateSystemTag and
 * UpdateSystemTag accept only these, as ZStack's TagManager does.
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
    'checksum::{algorithm}::{digest}',
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

export const isKnownSystemTag = (resourceType: string, tag: string): boolean =>
  (SYSTEM_TAG_FORMATS[resourceType] ?? []).some((format) => matchesTagFormat(format, tag));
