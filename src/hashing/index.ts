export * from './algorithms.js';
export { AbortError } from './errors.js';
export { createHashingTee, hashFile, hashStream, HashingTee, MultiDigest, type HashProgress, type HashRunOptions } from './engine.js';
export { hashPoolStats, shutdownHashPool } from './pool.js';
export { setHashingTuning } from './sinks.js';
