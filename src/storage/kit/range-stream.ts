import { Readable } from 'node:stream';
import type { OpenByteSource } from '../driver.js';

export interface RangeStreamOptions {
  /** First byte (default 0). */
  start?: number;
  /** Last byte, inclusive as in fs.createReadStream (default: the last byte of the source). */
  end?: number;
  /** Destroys the stream with the signal's reason. */
  signal?: AbortSignal;
  /** Bytes asked of the source per read. */
  chunkSize: number;
}

/**
 * Streams bytes `start`..`end` of an open source (clipped at its end) in reads of `chunkSize`. The stream owns
 * the source: it is closed when the stream ends, fails or is destroyed (also when size() fails here).
 * The range itself is checked by the caller (checkByteRange).
 */
export async function rangeStream(src: OpenByteSource, opts: RangeStreamOptions): Promise<Readable> {
  const { start, end, signal, chunkSize } = opts;
  let size: number;
  try {
    size = await src.size();
  } catch (err) {
    await src.close().catch(() => undefined);
    throw err;
  }
  const last = Math.min(end ?? size - 1, size - 1);
  let pos = start ?? 0;
  const stream = new Readable({
    highWaterMark: chunkSize,
    read: () => {
      if (pos > last) {
        stream.push(null);
        return;
      }
      src.read(pos, Math.min(chunkSize, last - pos + 1)).then(
        (bytes) => {
          if (bytes.length === 0) return void stream.push(null);
          pos += bytes.length;
          stream.push(bytes);
        },
        (err: unknown) => stream.destroy(err as Error),
      );
    },
    destroy: (err, cb) => {
      src.close().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
  stream.once('end', () => void src.close().catch(() => undefined));
  if (signal) {
    const onAbort = (): void => void stream.destroy(signal.reason as Error);
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }
  return stream;
}
