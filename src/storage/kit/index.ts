/** What the storage drivers share (local, SFTP, Ceph). */
export { checkByteRange, readableLength } from './byte-range.js';
export { HandleByteSource } from './byte-source.js';
export { checkImageUuid } from './image-uuid.js';
export { ImportBase, type ImportState } from './import-target.js';
export { isInsideOrSame, isStrictlyInside } from './inside.js';
export { rangeStream, type RangeStreamOptions } from './range-stream.js';
