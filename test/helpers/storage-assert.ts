import assert from 'node:assert/strict';
import { StorageError } from '../../src/lib/errors.js';

/** Asserts that `p` rejects with a StorageError of `kind` (and a message matching `re`); returns the error. */
export async function rejectsStorage(p: Promise<unknown>, kind: StorageError['kind'], re?: RegExp): Promise<StorageError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof StorageError, `expected a StorageError, got ${String(caught)} ${(caught as Error)?.stack ?? ''}`);
  assert.equal(caught.kind, kind, caught.message);
  if (re) assert.match(caught.message, re);
  return caught;
}
