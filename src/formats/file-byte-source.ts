/**
 * A ByteSource over a local file, by positional reads (never buffering the whole file).
 *
 * Mode 'sync' (default) uses pread(2) through fs.readSync: the inspector reads a few KiB at known offsets,
 * which the page cache answers in microseconds, and a thread-pool round trip per read would cost ten times
 * more than the read itself. It does block the event loop for the duration of each read, so for files on
 * slow or network filesystems inside a server, pass `{ mode: 'async' }` (libuv thread pool).
 */
import * as fs from 'node:fs';
import type { ByteSource } from './byte-source.js';

export interface FileByteSourceOptions {
  mode?: 'sync' | 'async';
}

function readAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export class FileByteSource implements ByteSource {
  private closed = false;

  private constructor(
    private readonly fd: number,
    private readonly length: number,
    private readonly mode: 'sync' | 'async',
  ) {}

  static async open(path: string, opts: FileByteSourceOptions = {}): Promise<FileByteSource> {
    const mode = opts.mode ?? 'sync';
    const fd =
      mode === 'sync'
        ? fs.openSync(path, 'r')
        : await new Promise<number>((resolve, reject) => fs.open(path, 'r', (err, d) => (err ? reject(err) : resolve(d))));
    try {
      const st = fs.fstatSync(fd);
      return new FileByteSource(fd, st.size, mode);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  size(): Promise<number> {
    return Promise.resolve(this.length);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw new Error('FileByteSource is closed');
    if (offset >= this.length || length <= 0) return new Uint8Array(0);
    const n = Math.min(length, this.length - offset);
    // allocUnsafe: every byte handed out is overwritten by the read (a short read is cut off below).
    const buf = new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
    let done = 0;
    while (done < n) {
      const got =
        this.mode === 'sync'
          ? fs.readSync(this.fd, buf, done, n - done, offset + done)
          : await readAsync(this.fd, buf, done, n - done, offset + done);
      if (got === 0) break;
      done += got;
    }
    return done === n ? buf : buf.subarray(0, done);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      fs.closeSync(this.fd);
    }
    return Promise.resolve();
  }
}

/** Opens `path`, runs `fn` with a source over it, closes it. */
export async function withFileSource<T>(path: string, fn: (src: FileByteSource) => Promise<T>, opts?: FileByteSourceOptions): Promise<T> {
  const src = await FileByteSource.open(path, opts);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}
