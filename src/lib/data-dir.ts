import { closeSync, mkdirSync, openSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, parse, resolve } from 'node:path';
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';

/*
 * Node's mkdir({recursive: true}) loops forever at 100% CPU when mkdir(2) answers ENOENT for a path whose
 * parent exists (as /proc and /sys do), so zimage creates directories one level at a time and checks the
 * data directory itself before anything else touches it.
 */

/** Kernel pseudo file systems (statfs f_type) that can never hold zimage's data. */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x1cd1, 'devpts'],
]);

const codeOf = (err: unknown): string => (err as NodeJS.ErrnoException)?.code ?? 'EIO';

/**
 * `mkdir -p` that cannot spin: creates each missing component with a plain mkdir(2) and fails with the
 * component and errno when one cannot be created or exists but is not a directory.
 */
export function makeDirs(dir: string): void {
  const target = resolve(dir);
  const missing: string[] = [];
  let at = target;
  for (;;) {
    let st;
    try {
      st = statSync(at);
    } catch (err) {
      // ENOTDIR: an ancestor is a file; walking up names it below.
      if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') throw new Error(`cannot check ${at} (${codeOf(err)})`, { cause: err });
      if (at === parse(at).root) throw new Error(`cannot check ${at} (ENOENT)`, { cause: err });
      missing.unshift(at);
      at = dirname(at);
      continue;
    }
    if (!st.isDirectory()) throw new Error(`${at} is not a directory`);
    break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EEXIST' && statSync(d).isDirectory()) continue;
      throw new Error(`cannot create ${d} (${code === 'EEXIST' ? 'exists and is not a directory' : code})`, { cause: err });
    }
  }
}

/** The nearest existing ancestor of `p` (p itself if it exists). */
function existingAncestor(p: string): string {
  let at = resolve(p);
  for (;;) {
    try {
      statSync(at);
      return at;
    } catch {
      const up = dirname(at);
      if (up === at) return at;
      at = up;
    }
  }
}

/**
 * Makes sure `dir` can hold zimage's data: not on a kernel pseudo file system, creatable, a directory,
 * writable (a probe file is created and removed; this also catches read-only mounts, which root cannot
 * bypass). Throws an Error whose message says what is wrong and with which path.
 */
export function prepareDataDir(dir: string): void {
  const target = resolve(dir);
  const what = `data directory ${target}`;
  const anchor = existingAncestor(target);
  let fsType: number | undefined;
  try {
    fsType = statfsSync(anchor).type;
  } catch {
    fsType = undefined;
  }
  const pseudo = fsType === undefined ? undefined : PSEUDO_FS.get(fsType);
  if (pseudo)
    throw new Error(`${what} is on the kernel's ${pseudo} file system (${anchor}), which cannot hold files; choose a directory on a disk`);
  try {
    makeDirs(target);
  } catch (err) {
    throw new Error(`${what} is unusable: ${(err as Error).message}`, { cause: err });
  }
  const probe = join(target, `.zimage-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    unlinkSync(probe);
  } catch (err) {
    const code = codeOf(err);
    const why = code === 'EROFS' ? 'it is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code;
    throw new Error(`${what} is not writable (${why}); give zimage a writable directory`, { cause: err });
  }
}
