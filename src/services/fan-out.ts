import { Writable } from 'node:stream';

/** Writes every chunk to all the storages' streams; moves on when all of them accepted it. */
export function fanOut(streams: Writable[]): Writable {
  return new Writable({
    highWaterMark: 4 * 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      Promise.all(streams.map((s) => writeChunk(s, chunk))).then(() => cb(), cb);
    },
    final(cb) {
      Promise.all(
        streams.map(
          (s) =>
            new Promise<void>((resolve, reject) => {
              s.once('error', reject);
              s.end(() => resolve());
            }),
        ),
      ).then(() => cb(), cb);
    },
    destroy(err, cb) {
      for (const s of streams) if (!s.destroyed) s.destroy(err ?? undefined);
      cb(err);
    },
  });
}

/** Writes one chunk, waiting for 'drain' when the stream is full; rejects when the stream fails or closes. */
export function writeChunk(w: Writable, chunk: Buffer): Promise<void> {
  if (w.destroyed || w.writableEnded) return Promise.reject(w.errored ?? new Error('the storage stream is closed'));
  if (w.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      w.off('drain', onDrain);
      w.off('error', onError);
      w.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(w.errored ?? new Error('the storage stream closed'));
    };
    w.on('drain', onDrain);
    w.on('error', onError);
    w.on('close', onClose);
  });
}
