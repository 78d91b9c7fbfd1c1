/**
 * Shared steps of the uploads-on-any-node tests (SFTP and Ceph): a PUT of upload bytes, the same upload URL on
 * another node, and a node SIGKILLed while a PUT still has bytes in flight.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { waitFor } from './zimage.js';

export const put = (url: string, body: Buffer, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PUT', body: new Uint8Array(body), headers: { 'Content-Type': 'application/octet-stream', ...headers } });

/** The same upload URL, on another node. */
export const on = (node: { url: string }, url: string) => url.replace(/^http:\/\/[^/]+/, node.url);

/** What a node logs when it continues an upload another node began. */
export const REBUILT = /running digests rebuilt from the stored bytes/g;

/**
 * Starts a PUT of `inFlight` at `offset` on `node` whose body never ends, waits until the node has those bytes,
 * then SIGKILLs the node: it dies mid-PUT, with the bytes received but the request unfinished.
 */
export async function killMidPut(
  node: { url: string; proc: ChildProcess },
  uploadUrl: string,
  inFlight: Buffer,
  offset: number,
): Promise<void> {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(inFlight));
    },
  });
  const dying = fetch(on(node, uploadUrl), {
    method: 'PUT',
    body,
    duplex: 'half',
    headers: { 'X-Offset': String(offset) },
  } as RequestInit).catch((err: unknown) => err);
  await waitFor(`the in-flight bytes to reach node ${node.url}`, async () => {
    const head = await fetch(on(node, uploadUrl), { method: 'HEAD' });
    return head.headers.get('x-offset') === String(offset + inFlight.length);
  });
  const exited = new Promise((r) => node.proc.once('exit', r));
  node.proc.kill('SIGKILL');
  await exited;
  assert.ok((await dying) instanceof Error, 'the PUT in flight broke off');
}
