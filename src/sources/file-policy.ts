/** The local-file half of the import policy: allowed roots, hidden paths, symbolic links and file types. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ImportSourceError } from './errors.js';
import { IMPORT_POLICY_ENV, type ImportPolicy } from './import-policy.js';

const isInside = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);

async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    try {
      out.push(await fsp.realpath(path.resolve(r)));
    } catch {
      // A root that does not exist cannot contain anything.
    }
  }
  return out;
}

const rootsHint = (policy: ImportPolicy): string =>
  policy.fileRoots.length
    ? `allowed directories are ${policy.fileRoots.join(', ')}; move the image there or add its directory to ${IMPORT_POLICY_ENV.fileRoots}`
    : `importing local files is disabled; set ${IMPORT_POLICY_ENV.fileRoots} to the directories images may be read from`;

/** Hidden segments count below the root only: a root may itself live in a dot-directory. */
const hiddenBelow = (p: string, rootList: readonly string[]): boolean => {
  const r = rootList.find((root) => isInside(p, root) && p !== root);
  return (
    r !== undefined &&
    path
      .relative(r, p)
      .split(path.sep)
      .some((seg) => seg.startsWith('.'))
  );
};

/**
 * The checks that need no file system: `filePath` is absolute, its normalised form lies inside an allowed
 * root and (when fileDenyHidden) has no hidden segment. Returns the normalised path. Throws
 * ImportSourceError ('invalid-url', 'forbidden').
 */
export function checkRequestedPath(filePath: string, policy: ImportPolicy): string {
  if (filePath.includes('\0')) throw new ImportSourceError('invalid-url', 'file path contains a NUL byte.');
  if (!path.isAbsolute(filePath)) {
    throw new ImportSourceError('invalid-url', `file path "${filePath}" is not absolute; give a path starting with "/".`);
  }
  const normalised = path.resolve(filePath);
  const roots = policy.fileRoots.map((r) => path.resolve(r));
  if (!roots.some((r) => isInside(normalised, r) && normalised !== r)) {
    const shown = normalised === filePath ? filePath : `${filePath} (that is, ${normalised})`;
    throw new ImportSourceError('forbidden', `file ${shown} is outside the directories zimage may import from (${rootsHint(policy)}).`);
  }
  if (policy.fileDenyHidden && hiddenBelow(normalised, roots)) {
    throw new ImportSourceError(
      'forbidden',
      `file ${normalised} is inside a hidden directory or is a hidden file; importing it is refused (rename it, or set ${IMPORT_POLICY_ENV.fileDenyHidden}=false).`,
    );
  }
  return normalised;
}

/**
 * Judges where `normalised` really is (`real`: symbolic links resolved, e.g. read from an open descriptor):
 * it must lie inside the real path of an allowed root and (when fileDenyHidden) have no hidden segment.
 * Throws ImportSourceError('forbidden').
 */
export async function checkRealPath(normalised: string, real: string, policy: ImportPolicy): Promise<void> {
  const realAllowed = await realRoots(policy.fileRoots);
  if (!realAllowed.some((r) => isInside(real, r) && real !== r)) {
    throw new ImportSourceError(
      'forbidden',
      `file ${normalised} resolves (through a symbolic link) to ${real}, which is outside the directories zimage may import from (${rootsHint(policy)}).`,
    );
  }
  if (policy.fileDenyHidden && hiddenBelow(real, realAllowed)) {
    throw new ImportSourceError('forbidden', `file ${normalised} resolves to ${real}, a hidden path; importing it is refused.`);
  }
}

/** ImportSourceError for a failed realpath/open of `normalised`. */
export function fileAccessError(err: unknown, normalised: string): ImportSourceError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new ImportSourceError('not-found', `file ${normalised} does not exist; check the url.`);
  if (code === 'EACCES' || code === 'EPERM') {
    return new ImportSourceError('forbidden', `file ${normalised} cannot be read by zimage (permission denied); fix its permissions.`);
  }
  if (code === 'ELOOP') return new ImportSourceError('forbidden', `file ${normalised} is a symbolic link loop.`);
  return new ImportSourceError('not-found', `file ${normalised} cannot be resolved (${code ?? 'error'}).`);
}

/** Refuses anything but a regular file, naming what it is. */
export function assertRegularFile(
  st: { isFile(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean },
  normalised: string,
): void {
  if (st.isFile()) return;
  const what = st.isDirectory() ? 'a directory' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
  throw new ImportSourceError('forbidden', `file ${normalised} is ${what}; only regular files can be imported.`);
}

/**
 * Accepts `filePath` only if it is absolute, its normalised form AND its real path (symlinks resolved)
 * lie inside an allowed root, no segment is hidden (when fileDenyHidden), and it is a regular file.
 * Returns the real path and the size. Throws ImportSourceError ('invalid-url', 'forbidden', 'not-found').
 * A verdict by path only: to read the file, use openFileSource, which judges the opened descriptor.
 */
export async function checkFilePath(filePath: string, policy: ImportPolicy): Promise<{ path: string; size: number }> {
  const normalised = checkRequestedPath(filePath, policy);
  let real: string;
  try {
    real = await fsp.realpath(normalised);
  } catch (err) {
    throw fileAccessError(err, normalised);
  }
  await checkRealPath(normalised, real, policy);
  const st = await fsp.stat(real).catch((err: NodeJS.ErrnoException) => {
    throw new ImportSourceError('not-found', `file ${normalised} cannot be read (${err.code ?? 'error'}).`);
  });
  assertRegularFile(st, normalised);
  return { path: real, size: st.size };
}
