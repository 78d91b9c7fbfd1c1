/**
 * Hashing benchmark: the engine against `openssl dgst`, one digest vs two in parallel, and the peak RSS of
 * a process hashing a 4 GiB sparse file. `node --import tsx bench/hashing.ts [workDir]` prints the report.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, open, truncate, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { hashFile, opensslName, type DigestAlgorithm } from '../src/hashing/index.js';
import { ensureRandomFile, median, warm } from './util.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function opensslDigest(alg: DigestAlgorithm, path: string): Promise<string> {
  const { stdout } = await execFileP('openssl', ['dgst', `-${opensslName(alg)}`, '-r', path]);
  return stdout.split(' ')[0]!;
}

const fmt = (x: number): string => x.toFixed(0).padStart(5);

/** Runs the engine in a child process on a `sizeGiB` sparse file; answers its peak RSS in bytes. */
export async function childPeakRss(
  sparsePath: string,
  algorithms: DigestAlgorithm[],
): Promise<{ maxRssBytes: number; digests: Record<string, string> }> {
  const isTs = import.meta.url.endsWith('.ts');
  const engine = new URL(`../src/hashing/index.${isTs ? 'ts' : 'js'}`, import.meta.url).href;
  const root = fileURLToPath(new URL(isTs ? '..' : '../..', import.meta.url));
  const code =
    `import { hashFile } from ${JSON.stringify(engine)};\n` +
    `const d = await hashFile(${JSON.stringify(sparsePath)}, { algorithms: ${JSON.stringify(algorithms)} });\n` +
    `process.stdout.write(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, digests: d }));\n`;
  const args = [...(isTs ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code];
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited with ${code}: ${err}`));
      else resolve(JSON.parse(out) as { maxRssBytes: number; digests: Record<string, string> });
    });
  });
}

export async function benchHashing(workDir: string, opts?: { sizeMiB?: number; rounds?: number }): Promise<string[]> {
  const sizeMiB = opts?.sizeMiB ?? 1024;
  const rounds = opts?.rounds ?? 3;
  await mkdir(workDir, { recursive: true });
  const file = join(workDir, `hash-bench-${sizeMiB}MiB.bin`);
  await ensureRandomFile(file, sizeMiB * MiB);
  await warm(file);
  // warm the worker pool too (threads are spawned once per process)
  await hashFile(file, { algorithms: ['MD5', 'SHA256'], end: 64 * MiB });

  const singles: DigestAlgorithm[] = ['MD5', 'SHA256', 'SHA512'];
  const times: Record<string, number[]> = {};
  const add = (k: string, t: number): void => void (times[k] ??= []).push(t);
  for (let r = 0; r < rounds; r++) {
    for (const alg of singles) {
      let viaOpenssl = '';
      let viaEngine: string | undefined;
      add(`openssl ${alg}`, await timed(async () => (viaOpenssl = await opensslDigest(alg, file))));
      add(`engine ${alg}`, await timed(async () => (viaEngine = (await hashFile(file, { algorithms: [alg] }))[alg])));
      if (viaOpenssl !== viaEngine) throw new Error(`${alg} mismatch: openssl ${viaOpenssl}, engine ${viaEngine}`);
    }
    add('engine MD5+SHA256', await timed(() => hashFile(file, { algorithms: ['MD5', 'SHA256'] })));
  }
  const rate = (k: string): number => sizeMiB / median(times[k]!);
  const lines: string[] = [];
  lines.push(`hashing bench: ${sizeMiB} MiB random file in page cache, ${rounds} rounds, medians`);
  for (const alg of singles) {
    const o = rate(`openssl ${alg}`);
    const e = rate(`engine ${alg}`);
    const ratio = e / o;
    lines.push(
      `${alg.padEnd(7)} openssl dgst ${fmt(o)} MiB/s | hashFile ${fmt(e)} MiB/s | ratio ${ratio.toFixed(3)} (target >= 0.95) ${ratio >= 0.95 ? 'OK' : 'MISS'}`,
    );
  }
  const md5 = rate('engine MD5');
  const both = rate('engine MD5+SHA256');
  const r2 = both / md5;
  lines.push(
    `MD5 alone ${fmt(md5)} MiB/s | MD5+SHA256 (2 workers) ${fmt(both)} MiB/s | ratio ${r2.toFixed(3)} (target >= 0.9) ${r2 >= 0.9 ? 'OK' : 'MISS'}`,
  );

  const sparse = join(workDir, 'hash-bench-sparse-4GiB.img');
  await rm(sparse, { force: true });
  await (await open(sparse, 'w')).close();
  await truncate(sparse, 4 * 1024 * MiB);
  // The first read of a fresh sparse file makes the kernel allocate and zero page-cache pages for the
  // holes (about as slow as the hashing itself): read it once so both contenders see the same warm cache.
  await warm(sparse);
  let refMd5 = '';
  const tRef = await timed(async () => (refMd5 = await opensslDigest('MD5', sparse)));
  const t0 = performance.now();
  const child = await childPeakRss(sparse, ['MD5', 'SHA256']);
  const secs = (performance.now() - t0) / 1000;
  await rm(sparse, { force: true });
  if (child.digests.MD5 !== refMd5) throw new Error(`4 GiB MD5 mismatch: openssl ${refMd5}, engine ${child.digests.MD5}`);
  const rssMB = child.maxRssBytes / 1e6;
  lines.push(
    `4 GiB sparse (page cache warm): openssl dgst -md5 ${fmt(4096 / tRef)} MiB/s | child process MD5+SHA256 ${fmt(4096 / secs)} MiB/s (incl. node startup)`,
  );
  lines.push(`4 GiB sparse, MD5+SHA256 child process peak RSS ${rssMB.toFixed(1)} MB (target < 200 MB) ${rssMB < 200 ? 'OK' : 'MISS'}`);
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? join(tmpdir(), 'zimage-bench-hashing');
  for (const line of await benchHashing(dir)) console.log(line);
}
