import { constants, promises as fsp } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ImportSourceError } from './errors.js';
import type { OpenedSource } from './http.js';
import { checkFilePath, type ImportPolicy } from './policy.js';

/** The absolute path a `file:` url or a plain absolute path names. Throws ImportSourceError('invalid-url'). */
export function filePathOf(url: string): string {
  if (url.startsWith('/')) return url;
  try {
    return fileURLToPath(url);
  } catch {
    throw new ImportSourceError(
      'invalid-url',
      `url ${url} is not a valid local file url; write file:///absolute/path/to/image (no host) or the absolute path itself.`,
    );
  }
}

/**
 * Opens a local file for import after {@link checkFilePath}. The file is opened without following a final
 * symbolic link and checked to be the very file that was vetted.
 */
export async function openFileSource(url: string, policy: ImportPolicy, opts: { signal?: AbortSignal } = {}): Promise<OpenedSource> {
  const requested = filePathOf(url);
  const checked = await checkFilePath(requested, policy);
  opts.signal?.throwIfAborted();
  const vetted = await fsp.stat(checked.path);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(checked.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new ImportSourceError('forbidden', `file ${requested} cannot be read by zimage (permission denied); fix its permissions.`);
    }
    throw new ImportSourceError('not-found', `file ${requested} cannot be opened (${code ?? 'error'}).`);
  }
  const st = await fh.stat();
  if (!st.isFile() || st.ino !== vetted.ino || st.dev !== vetted.dev) {
    await fh.close();
    throw new ImportSourceError('forbidden', `file ${requested} changed while it was being opened; importing it is refused.`);
  }
  const stream = fh.createReadStream({ ...(opts.signal ? { signal: opts.signal } : {}) });
  return { stream, length: st.size, displayUrl: url.startsWith('/') ? `file://${url}` : url };
}
