/**
 * Assertions several test files share: a rejection with a typed error of a given kind, a ZStack error
 * answer (503 with code and details), and reading a stream or hashing bytes for comparisons.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { HttpAnswer } from './zimage.js';

/** Asserts that `p` rejects with a `cls` of `kind` whose message matches `re`; returns the error. */
export async function rejectsKind<E extends Error & { kind: string }>(
  p: Promise<unknown>,
  cls: abstract new (...args: any[]) => E,
  kind: E['kind'],
  re?: RegExp,
): Promise<E> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${String(caught)} ${(caught as Error | undefined)?.stack ?? ''}`);
  assert.equal(caught.kind, kind, caught.message);
  if (re) assert.match(caught.message, re);
  return caught;
}

/** Asserts a ZStack error answer: HTTP 503, `code`, and `details` equal to a string or matching a pattern. */
export function assertZStackError(res: HttpAnswer, code: string, details?: string | RegExp): any {
  assert.equal(res.status, 503, res.text);
  assert.equal(res.body.error.code, code, res.text);
  if (typeof details === 'string') assert.equal(res.body.error.details, details);
  else if (details) assert.match(res.body.error.details, details);
  return res.body.error;
}

/** All bytes of a stream. */
export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

export const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
