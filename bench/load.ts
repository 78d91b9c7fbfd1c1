/**
 * Load on one zimage process (`zimage serve`, as a user starts it):
 * - flight: 20 concurrent identical CalculateImageHash SHA256 of one 1 GiB image vs one alone (single flight;
 *   default heavy-job limit), ratio target <= 1.5.
 * - memory: ZIMAGE_MAX_HEAVY_JOBS=20, 20 concurrent hashes of different 256 MiB images and 10 concurrent
 *   AddImage of 256 MiB from a local HTTP server; the server's peak RSS (VmRSS sampled every 20 ms, and VmHWM)
 *   target < 400 MB.
 * `node --import tsx bench/load.ts [workDir] [flight|memory]` prints the report.
 */
import { readFile, mkdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startProcess, type ZClient } from '../test/helpers/zimage.js';
import { serveFile } from './api.js';
import { ensureRandomFile, median, warm } from './util.js';

const MiB = 1 << 20;

async function addFromFile(c: ZClient, bs: string, name: string, path: string): Promise<{ uuid: string; installPath: string }> {
  const res = await c.call(
    'POST',
    '/images',
    { params: { name, url: `file://${path}`, format: 'raw', backupStorageUuids: [bs] } },
    {},
    600_000,
  );
  if (res.status !== 200) throw new Error(`AddImage failed: ${res.text}`);
  return { uuid: res.body.inventory.uuid, installPath: res.body.inventory.backupStorageRefs[0].installPath };
}

async function hash(c: ZClient, uuid: string, bs: string, algorithm: string): Promise<string> {
  const res = await c.call('PUT', `/images/${uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm } }, {}, 600_000);
  if (res.status !== 200) throw new Error(`CalculateImageHash failed: ${res.text.slice(0, 300)}`);
  return res.body.inventory.md5Sum as string;
}

export async function benchFlight(workDir: string, opts: { sizeMiB?: number; callers?: number; rounds?: number } = {}): Promise<string[]> {
  const sizeMiB = opts.sizeMiB ?? 1024;
  const callers = opts.callers ?? 20;
  const rounds = opts.rounds ?? 5;
  const fixtures = join(workDir, 'api-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, `random-${sizeMiB}MiB.raw`);
  await ensureRandomFile(source, sizeMiB * MiB);
  const run = join(workDir, 'flight-run');
  await rm(run, { recursive: true, force: true });
  await mkdir(join(run, 'storage'), { recursive: true });
  const server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
  try {
    const c = server.client;
    await c.login();
    const bs = (await c.addLocalStorage(join(run, 'storage'))).uuid;
    const image = await addFromFile(c, bs, 'flight', source);
    await warm(image.installPath);
    const pid = server.proc.pid!;
    const one: number[] = [];
    const many: number[] = [];
    const oneCpu: number[] = [];
    const manyCpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      let cpu0 = await cpuSeconds(pid);
      let t0 = performance.now();
      const digest = await hash(c, image.uuid, bs, 'SHA256');
      one.push((performance.now() - t0) / 1000);
      oneCpu.push((await cpuSeconds(pid)) - cpu0);
      cpu0 = await cpuSeconds(pid);
      t0 = performance.now();
      const all = await Promise.all(Array.from({ length: callers }, () => hash(c, image.uuid, bs, 'SHA256')));
      many.push((performance.now() - t0) / 1000);
      manyCpu.push((await cpuSeconds(pid)) - cpu0);
      if (all.some((d) => d !== digest)) throw new Error(`concurrent callers disagree: ${[...new Set(all)].join(', ')}`);
    }
    const ratio = median(many) / median(one);
    const cpuRatio = median(manyCpu) / median(oneCpu);
    return [
      `Single flight: ${sizeMiB} MiB random image in page cache, default heavy-job limit, ${rounds} rounds, medians; server CPU = its user+system seconds (the callers poll every 50 ms)`,
      `${callers} concurrent identical CalculateImageHash SHA256 ${median(many).toFixed(2)} s (server CPU ${median(manyCpu).toFixed(2)} s) | one ${median(one).toFixed(2)} s (server CPU ${median(oneCpu).toFixed(2)} s) | ratio ${ratio.toFixed(2)} (server CPU ${cpuRatio.toFixed(2)}) (target <= 1.5) ${ratio <= 1.5 ? 'OK' : 'MISS'}`,
    ];
  } finally {
    await server.stop();
    await rm(run, { recursive: true, force: true });
  }
}

/** User + system CPU seconds a process has used (/proc/<pid>/stat, clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Samples a process's resident memory (/proc/<pid>/status) until stopped; reports the peak seen and VmHWM. */
function sampleRss(pid: number, everyMs = 20): { stop(): Promise<{ peakRss: number; hwm: number }> } {
  let peakRss = 0;
  let hwm = 0;
  let running = true;
  const read = async (): Promise<void> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    peakRss = Math.max(peakRss, kb('VmRSS'));
    hwm = Math.max(hwm, kb('VmHWM'));
  };
  const loop = (async () => {
    while (running) {
      await read();
      await new Promise((r) => setTimeout(r, everyMs));
    }
    await read();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { peakRss, hwm };
    },
  };
}

export async function benchMemory(workDir: string, opts: { sizeMiB?: number; hashes?: number; imports?: number } = {}): Promise<string[]> {
  const sizeMiB = opts.sizeMiB ?? 256;
  const hashes = opts.hashes ?? 20;
  const imports = opts.imports ?? 10;
  const fixtures = join(workDir, 'memory-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, `random-${sizeMiB}MiB.raw`);
  await ensureRandomFile(source, sizeMiB * MiB);
  const seed = join(fixtures, 'seed-4MiB.raw');
  await ensureRandomFile(seed, 4 * MiB);
  const run = join(workDir, 'memory-run');
  await rm(run, { recursive: true, force: true });
  await mkdir(join(run, 'storage'), { recursive: true });
  const server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: fixtures, ZIMAGE_MAX_HEAVY_JOBS: '20' });
  const httpSource = await serveFile(source);
  try {
    const c = server.client;
    await c.login();
    const bs = (await c.addLocalStorage(join(run, 'storage'))).uuid;
    // Different images to hash: a random 4 MiB head, the rest sparse (zeros read from the page cache of the
    // holes: the same buffers and digest work as random data, without 5 GiB on disk).
    const images = [];
    for (let i = 0; i < hashes; i++) {
      const image = await addFromFile(c, bs, `hash-${i}`, seed);
      await truncate(image.installPath, sizeMiB * MiB);
      images.push(image);
    }
    const idle = sampleRss(server.proc.pid!);
    const before = await idle.stop();
    const sampler = sampleRss(server.proc.pid!);
    const t0 = performance.now();
    // Imports first: with 20 slots, the 10 imports run beside 10 hashes, the other hashes as slots free up.
    const importing = Array.from({ length: imports }, async (_, i) => {
      const res = await c.call(
        'POST',
        '/images',
        { params: { name: `import-${i}`, url: httpSource.url, format: 'raw', backupStorageUuids: [bs] } },
        {},
        600_000,
      );
      if (res.status !== 200) throw new Error(`AddImage failed: ${res.text.slice(0, 300)}`);
    });
    await Promise.all([...importing, ...images.map((im) => hash(c, im.uuid, bs, 'SHA256'))]);
    const seconds = (performance.now() - t0) / 1000;
    const { peakRss, hwm } = await sampler.stop();
    const peak = Math.max(peakRss, hwm);
    return [
      `Memory under load: ZIMAGE_MAX_HEAVY_JOBS=20, ${hashes} concurrent CalculateImageHash SHA256 of different ${sizeMiB} MiB images (sparse after a 4 MiB random head) + ${imports} concurrent AddImage of ${sizeMiB} MiB from local HTTP, ${seconds.toFixed(1)} s`,
      `server peak RSS ${(peak / 1e6).toFixed(0)} MB (VmRSS sampled every 20 ms ${(peakRss / 1e6).toFixed(0)} MB, VmHWM ${(hwm / 1e6).toFixed(0)} MB; idle before ${(before.peakRss / 1e6).toFixed(0)} MB) (target < 400 MB) ${peak < 400e6 ? 'OK' : 'MISS'}`,
    ];
  } finally {
    await httpSource.close();
    await server.stop();
    await rm(run, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? join(tmpdir(), 'zimage-bench');
  const which = process.argv[3];
  if (!which || which === 'flight') for (const line of await benchFlight(dir)) console.log(line);
  if (!which || which === 'memory') for (const line of await benchMemory(dir)) console.log(line);
}
