/** Fixtures for the hashing tests: files, reference digests from `openssl dgst`, child processes. */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { opensslName, type DigestAlgorithm } from '../../src/hashing/algorithms.js';

const execFileP = promisify(execFile);

export const MiB = 1 << 20;
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The engine's entry point as tsx runs it (from the .ts sources). */
export const ENGINE_TS_URL = pathToFileURL(join(REPO_ROOT, 'src/hashing/index.ts')).href;

export async function makeTempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `zimage-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A file of `size` random bytes; answers its path and its bytes. */
export async function writeRandomFile(dir: string, name: string, size: number): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, bytes };
}

/** A sparse file of `size` zero bytes (no block allocated), like `truncate -s`. */
export async function makeSparseFile(dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, name);
  await (await open(path, 'w')).close();
  await truncate(path, size);
  return path;
}

function parseOpensslOutput(stdout: string): string {
  // "MD5(path)= 0123…" or "SHA2-256(stdin)= 0123…"
  const m = /=\s*([0-9a-f]+)\s*$/.exec(stdout.trim());
  if (!m) throw new Error(`unexpected openssl dgst output: ${JSON.stringify(stdout)}`);
  return m[1]!;
}

/** `openssl dgst -<alg> <path>`, run with an argument list (no shell). */
export async function opensslDigest(alg: DigestAlgorithm, path: string): Promise<string> {
  const { stdout } = await execFileP('openssl', ['dgst', `-${opensslName(alg)}`, path], { maxBuffer: 1 << 20 });
  return parseOpensslOutput(stdout);
}

/** `openssl dgst -<alg>` over bytes fed on its standard input. */
export async function opensslDigestOfBytes(alg: DigestAlgorithm, bytes: Uint8Array): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn('openssl', ['dgst', `-${opensslName(alg)}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`openssl exited with ${code}: ${err}`));
      else {
        try {
          resolve(parseOpensslOutput(out));
        } catch (e) {
          reject(e);
        }
      }
    });
    child.stdin.end(bytes);
  });
}

/** Reference digests of a file for several algorithms (openssl processes run concurrently). */
export async function opensslDigests(algs: readonly DigestAlgorithm[], path: string): Promise<Record<string, string>> {
  const values = await Promise.all(algs.map((a) => opensslDigest(a, path)));
  return Object.fromEntries(algs.map((a, i) => [a, values[i]!]));
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs ES module source in a fresh node process (with the tsx loader unless `tsx: false`). */
export async function runNodeModule(code: string, opts?: { tsx?: boolean; timeoutMs?: number }): Promise<ChildResult> {
  const args = [...(opts?.tsx === false ? [] : ['--import', 'tsx']), '--input-type=module', '-e', code];
  const t0 = performance.now();
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts?.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Yields `bytes` in chunks of `chunkSize`, optionally waiting `delayMs` before each chunk. */
export async function* chunked(bytes: Uint8Array, chunkSize: number, delayMs = 0): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.byteLength; off += chunkSize) {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    yield bytes.subarray(off, Math.min(off + chunkSize, bytes.byteLength));
  }
}

/** Open descriptors of this process. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Collects unhandled rejections from now on; call the returned function to read them. */
export function collectUnhandledRejections(): () => unknown[] {
  const seen: unknown[] = [];
  process.on('unhandledRejection', (reason) => seen.push(reason));
  return () => seen;
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
