/** A ByteSource over a local file (positional reads; no whole-file buffering). */
import { open, type FileHandle } from 'node:fs/promises';
import type { ByteSource } from './byte-source.js';

export class FileByteSource implements ByteSource {
  private constructor(
    private readonly handle: FileHandle,
    private readonly length: number,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    const handle = await open(path, 'r');
    try {
      const st = await handle.stat();
      return new FileByteSource(handle, st.size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset >= this.length || length <= 0) return new Uint8Array(0);
    const n = Math.min(length, this.length - offset);
    const buf = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.handle.read(buf, done, n - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === n ? buf : buf.subarray(0, done);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Opens `path`, runs `fn` with a source over it, closes it. */
export async function withFileSource<T>(path: string, fn: (src: FileByteSource) => Promise<T>): Promise<T> {
  const src = await FileByteSource.open(path);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}
