/** Formats an image may be declared with: ZStack's registered ones plus the ones zimage measures. */
export const IMAGE_FORMATS = ['qcow2', 'raw', 'vmdk', 'iso', 'vhd', 'vhdx', 'vdi'] as const;
export const MEDIA_TYPES = ['RootVolumeTemplate', 'DataVolumeTemplate', 'ISO'] as const;
export const PLATFORMS = ['Linux', 'Windows', 'WindowsVirtio', 'Other', 'Paravirtualization'] as const;
export const ARCHITECTURES = ['x86_64', 'aarch64', 'mips64el', 'loongarch64'] as const;
/** Digests computed in the same pass that stores the bytes. */
export const IMPORT_DIGESTS = ['MD5', 'SHA256'] as const;
