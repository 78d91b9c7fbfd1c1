import { StorageError } from '../../src/lib/errors.js';
import { rejectsKind } from './assert.js';

/** Asserts that `p` rejects with a StorageError of `kind` (and a message matching `re`); returns the error. */
export const rejectsStorage = (p: Promise<unknown>, kind: StorageError['kind'], re?: RegExp): Promise<StorageError> =>
  rejectsKind(p, StorageError, kind, re);
