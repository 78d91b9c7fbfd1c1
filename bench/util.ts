import { randomFillSync } from 'node:crypto';
import { open, stat } from 'node:fs/promises';

const MiB = 1 << 20;

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Creates (once) a file of random bytes of exactly `bytes`. */
export async function ensureRandomFile(path: string, bytes: number): Promise<void> {
  if ((await stat(path).catch(() => undefined))?.size === bytes) return;
  const fh = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(4 * MiB);
    for (let done = 0; done < bytes;) {
      const n = Math.min(buf.length, bytes - done);
      randomFillSync(buf, 0, n);
      await fh.write(buf, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
}

/** Reads a file once so that the timed runs find it in the page cache. */
export async function warm(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * MiB);
    while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
  } finally {
    await fh.close();
  }
}
