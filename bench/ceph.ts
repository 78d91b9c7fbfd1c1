/**
 * Ceph RBD backup storage benchmark, against a real one-node Ceph (scripts/ceph-test-cluster.sh, memstore
 * OSD on 127.0.0.1, auth none):
 *  - CalculateImageHash (MD5, SHA256, MD5+SHA256) of a 512 MiB image through the HTTP API vs
 *    `rbd export pool/img - | openssl dgst`, interleaved rounds, medians, ratio (target >= 0.95). Two
 *    references, the faster one counts: a bash pipe (a kernel pipe, 64 KiB) and rbd's stdout handed to
 *    openssl by Node's spawn (a Unix socketpair, larger buffers: fewer stalls of rbd's writer, measurably
 *    faster — which is why this bench and a shell one-liner disagreed, 0.76x vs 1.09x). MD5+SHA256 against
 *    bash `rbd export | tee fifo | openssl dgst -md5` with `openssl dgst -sha256 < fifo`;
 *  - SyncImageSize: image bytes read per call and median latency through the API (goal < 20 ms), and for
 *    comparison the cost of one `rbd info` run (what a CLI-only driver would pay per metadata call);
 *  - AddImage of the same 512 MiB file into Ceph through the API (MD5 + SHA-256 in the same pass) vs
 *    `rbd import <file> pool/img`, interleaved rounds, medians, ratio (target >= 0.9), beside one core's
 *    MD5 of the same file (`openssl dgst -md5 FILE`) and the "MD5-bound ratio" (MD5 time / AddImage time):
 *    where MD5 is slower than the storage, AddImage cannot beat it: then OK means MD5-bound ratio >= 0.9.
 *    Beside them the same work done by the reference tools at once (`rbd import FILE`, `openssl dgst -md5
 *    FILE` and `openssl dgst -sha256 FILE` started together): on a small machine whose cores also run the
 *    OSD, storing and both digests compete for the CPU, and that run is the machine's floor for the work.
 *    CPU seconds of each (zimage's process, its rbd children and helper, the Ceph daemons; for the tools
 *    their processes and the daemons) say what each way costs, whatever the load. The first copy is checked
 *    against the file: `rbd export | openssl dgst -md5`, the md5Sum AddImage recorded, `rbd info`'s size.
 * `node --import tsx bench/ceph.ts [workDir]` prints the report. BENCH_CEPH_MON_PORT picks the monitor's
 * port (default 33300) so a bench can run beside the test files' clusters.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { CephDriver } from '../src/storage/ceph/driver.js';
import { shutdownHashPool } from '../src/hashing/pool.js';
import { startCephCluster } from '../test/helpers/ceph.js';
import { startInProcess } from '../test/helpers/zimage.js';
import { childPids, cpuSnapshot, cpuSpent } from './cpu.js';
import { ensureRandomFile, median } from './util.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;
const SIZE_MIB = 512;
const ROUNDS = Number(process.env.BENCH_CEPH_ROUNDS ?? 5);
const MON_PORT = Number(process.env.BENCH_CEPH_MON_PORT ?? 31300); // below Linux's ephemeral ports (32768-60999)
const HASH_TARGET = 0.95;
const ADD_TARGET = 0.9;
const SYNC_CALLS = 30;

const debug = (...a: unknown[]): void => {
  if (process.env.BENCH_DEBUG) console.error('[bench]', ...a);
};

/** `rbd export <spec> - | openssl dgst -md5`: rbd's stdout is openssl's stdin (a kernel pipe, no copy through Node). */
function exportPipedToOpenssl(rbdArgs: string[], env: NodeJS.ProcessEnv, alg = 'md5'): Promise<string> {
  return new Promise((resolve, reject) => {
    const rbd = spawn('rbd', rbdArgs, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const ossl = spawn('openssl', ['dgst', `-${alg}`, '-r'], { stdio: [rbd.stdout, 'pipe', 'inherit'] });
    // openssl has its own copy of the pipe's read end; ours must not read from it (nor wait for its EOF).
    rbd.stdout.destroy();
    let out = '';
    ossl.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let pending = 2;
    let failed = false;
    const done = (who: string) => (code: number | null) => {
      if (code !== 0 && !failed) {
        failed = true;
        reject(new Error(`${who} exited with ${code}`));
      }
      if (--pending === 0 && !failed) resolve(out.split(' ')[0]!.trim());
    };
    rbd.once('exit', done('rbd export'));
    ossl.once('close', done('openssl'));
  });
}

/** Digest hex of each algorithm, from `rbd export <spec> - | openssl dgst` run by bash (kernel pipes). */
async function exportPipedInShell(spec: string, algs: string[], env: NodeJS.ProcessEnv): Promise<string[]> {
  // Fixed script; the image spec is an argument ($1), never part of the script text.
  const script =
    algs.length === 1
      ? `rbd export --no-progress "$1" - | openssl dgst -${algs[0]} -r`
      : `d=$(mktemp -d) && mkfifo "$d/f" && { openssl dgst -${algs[1]} -r < "$d/f" > "$d/2" & } && ` +
        `rbd export --no-progress "$1" - | tee "$d/f" | openssl dgst -${algs[0]} -r && wait && cat "$d/2" && rm -r "$d"`;
  const { stdout } = await execFileP('bash', ['-o', 'pipefail', '-c', script, 'bench', spec], { env });
  return stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0]!);
}

/** `openssl dgst -<alg> FILE`'s digest. */
async function fileDigest(alg: string, file: string): Promise<string> {
  const { stdout } = await execFileP('openssl', ['dgst', `-${alg}`, '-r', file]);
  return stdout.split(' ')[0]!;
}

/** What AddImage does, by the reference tools at once: `rbd import FILE`, `openssl dgst -md5 FILE` and `-sha256 FILE`. */
async function referenceToolsAtOnce(file: string, image: string, env: NodeJS.ProcessEnv): Promise<void> {
  await Promise.all([
    execFileP('rbd', ['import', '--no-progress', file, image], { env }),
    fileDigest('md5', file),
    fileDigest('sha256', file),
  ]);
}

const load = (): string => `load ${(os.loadavg()[0] ?? 0).toFixed(1)}`;

export async function benchCeph(workDir: string): Promise<string[]> {
  const lines: string[] = [];
  // BENCH_DEBUG=1 prints each figure as soon as it is measured (a later failure keeps it).
  const push = lines.push.bind(lines);
  lines.push = (...l: string[]): number => {
    for (const x of l) debug(x);
    return push(...l);
  };
  await mkdir(workDir, { recursive: true });
  const fixtures = join(workDir, 'ceph-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, `random-${SIZE_MIB}MiB.raw`);
  await ensureRandomFile(source, SIZE_MIB * MiB);

  const cluster = await startCephCluster({ name: 'bench', monPort: MON_PORT, memstoreBytes: 6 * 1024 * MiB });
  lines.push(`Ceph test cluster (mon + mgr + memstore OSD, auth none) started in ${cluster.startSeconds.toFixed(2)} s`);
  const env = { ...process.env, CEPH_CONF: cluster.conf };
  const server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
  try {
    const c = server.client;
    await c.login();
    const add = await c.call('POST', '/backup-storage/ceph', { params: { name: 'bench', monUrls: [cluster.monUrl], poolName: 'rbd' } });
    if (add.status !== 200) throw new Error(`AddCephBackupStorage failed: ${add.text}`);
    const bs = add.body.inventory.uuid as string;

    // AddImage vs rbd import, interleaved; each copy removed after its round (the OSD keeps data in RAM).
    // Also the driver's storage path alone (importFromFile: rbd import /dev/fd/3, no hashing), to separate it from hashing.
    const row0 = await server.app!.services.backupStorage.require(bs);
    const driver0 = server.app!.services.backupStorage.driver(row0) as CephDriver;
    const apiAdd: number[] = [];
    const cliImport: number[] = [];
    const driverOnly: number[] = [];
    const md5File: number[] = [];
    const atOnce: number[] = [];
    const cpu = { add: [] as number[], import: [] as number[], md5: [] as number[], sha256: [] as number[], atOnce: [] as number[] };
    // Ceph daemons and zimage's RADOS helper: their CPU counts for whichever run makes them work.
    const daemons = ['mon.a', 'mgr.x', 'osd.0'].map((d) => Number(readFileSync(join(cluster.dir, 'run', `${d}.pid`), 'utf8').trim()));
    const others = (): number[] => [...daemons, ...childPids('rados_helper')];
    const [fileMd5, fileSha256] = [await fileDigest('md5', source), await fileDigest('sha256', source)];
    let uuid = '';
    for (let i = 0; i < ROUNDS; i++) {
      let c0 = cpuSnapshot(others);
      let t0 = performance.now();
      const img = await c.call(
        'POST',
        '/images',
        { params: { name: `bench-${i}`, url: `file://${source}`, format: 'raw', backupStorageUuids: [bs] } },
        {},
        600_000,
      );
      apiAdd.push((performance.now() - t0) / 1000);
      cpu.add.push(cpuSpent(c0, cpuSnapshot(others)));
      debug('AddImage', i, img.status, apiAdd[i], 'cpu', cpu.add[i]);
      if (img.status !== 200) throw new Error(`AddImage failed: ${img.text}`);
      const added = img.body.inventory as { uuid: string; md5Sum: string; size: number };
      if (added.md5Sum !== fileMd5) throw new Error(`AddImage recorded md5Sum ${added.md5Sum}, the file's MD5 is ${fileMd5}`);
      if (i > 0) await cluster.rbd(['rm', '--no-progress', `rbd/${added.uuid}`]);
      else {
        uuid = added.uuid;
        // The stored copy is the file, byte for byte, and its size is the file's.
        const [stored] = await exportPipedInShell(`rbd/${uuid}`, ['md5'], env);
        const info = JSON.parse(await cluster.rbd(['info', '--format', 'json', `rbd/${uuid}`])) as { size: number };
        if (stored !== fileMd5 || info.size !== SIZE_MIB * MiB || added.size !== SIZE_MIB * MiB) {
          throw new Error(
            `stored copy differs from the file: MD5 ${stored} vs ${fileMd5}, rbd info size ${info.size}, AddImage size ${added.size}`,
          );
        }
      }
      c0 = cpuSnapshot(others);
      t0 = performance.now();
      await execFileP('rbd', ['import', '--no-progress', source, `rbd/cli-import-${i}`], { env });
      cliImport.push((performance.now() - t0) / 1000);
      cpu.import.push(cpuSpent(c0, cpuSnapshot(others), false));
      debug('rbd import', i, cliImport[i], 'cpu', cpu.import[i]);
      await cluster.rbd(['rm', '--no-progress', `rbd/cli-import-${i}`]);
      c0 = cpuSnapshot(others);
      t0 = performance.now();
      await referenceToolsAtOnce(source, `rbd/cli-at-once-${i}`, env);
      atOnce.push((performance.now() - t0) / 1000);
      cpu.atOnce.push(cpuSpent(c0, cpuSnapshot(others), false));
      debug('tools at once', i, atOnce[i], 'cpu', cpu.atOnce[i]);
      await cluster.rbd(['rm', '--no-progress', `rbd/cli-at-once-${i}`]);
      t0 = performance.now();
      const fh = await open(source, 'r');
      const target = await driver0.importFromFile(`driver-only-${i}`, fh.fd, SIZE_MIB * MiB);
      await target.commit();
      await fh.close();
      driverOnly.push((performance.now() - t0) / 1000);
      await driver0.delete(target.installPath);
      c0 = cpuSnapshot(others);
      t0 = performance.now();
      if ((await fileDigest('md5', source)) !== fileMd5) throw new Error('openssl dgst -md5 changed its mind');
      md5File.push((performance.now() - t0) / 1000);
      cpu.md5.push(cpuSpent(c0, cpuSnapshot(others), false));
      c0 = cpuSnapshot(others);
      if ((await fileDigest('sha256', source)) !== fileSha256) throw new Error('openssl dgst -sha256 changed its mind');
      cpu.sha256.push(cpuSpent(c0, cpuSnapshot(others), false));
    }
    const addRatio = median(cliImport) / median(apiAdd);
    const md5Bound = median(md5File) / median(apiAdd);
    const floorRatio = median(atOnce) / median(apiAdd);
    const toolsCpu = median(cpu.import) + median(cpu.md5) + median(cpu.sha256);
    lines.push(
      `Ceph AddImage ${SIZE_MIB} MiB via API (file:// -> rbd import /dev/fd/3, MD5+SHA256 of the same inode beside it): median ${median(apiAdd).toFixed(3)} s (${(SIZE_MIB / median(apiAdd)).toFixed(0)} MiB/s) | ` +
        `rbd import <file>: median ${median(cliImport).toFixed(3)} s (${(SIZE_MIB / median(cliImport)).toFixed(0)} MiB/s) | ` +
        `ratio ${addRatio.toFixed(3)} over ${ROUNDS} rounds (target >= ${ADD_TARGET}) ${addRatio >= ADD_TARGET ? 'OK' : median(md5File) > median(cliImport) && md5Bound >= ADD_TARGET ? 'OK (MD5-bound)' : 'MISS'} | ` +
        `driver storage path alone (rbd import /dev/fd/3, no hashing): median ${median(driverOnly).toFixed(3)} s, ratio ${(median(cliImport) / median(driverOnly)).toFixed(3)} | ` +
        `one core's MD5 (openssl dgst -md5 FILE): median ${median(md5File).toFixed(3)} s, MD5-bound ratio ${md5Bound.toFixed(3)} | ${load()}`,
      `Ceph AddImage ${SIZE_MIB} MiB vs the same work by the reference tools at once (rbd import FILE & openssl dgst -md5 FILE & openssl dgst -sha256 FILE): ` +
        `median ${median(atOnce).toFixed(3)} s, ratio ${floorRatio.toFixed(3)} (machine floor, target >= ${ADD_TARGET}) ${floorRatio >= ADD_TARGET ? 'OK' : 'MISS'} | ` +
        `CPU seconds (process + rbd + helper + Ceph daemons), medians: AddImage ${median(cpu.add).toFixed(2)}; rbd import FILE ${median(cpu.import).toFixed(2)} + ` +
        `MD5 ${median(cpu.md5).toFixed(2)} + SHA-256 ${median(cpu.sha256).toFixed(2)} = ${toolsCpu.toFixed(2)} (tools at once ${median(cpu.atOnce).toFixed(2)}), ` +
        `ratio ${(toolsCpu / median(cpu.add)).toFixed(3)}; over ${os.availableParallelism()} cores the CPU alone needs >= ${(median(cpu.add) / os.availableParallelism()).toFixed(3)} s | ` +
        `stored copy checked: rbd export | openssl dgst -md5 and rbd info size equal the file | ${load()}`,
    );

    // CalculateImageHash vs rbd export | openssl dgst, interleaved, per algorithm set.
    await exportPipedInShell(`rbd/${uuid}`, ['md5'], env); // warm-up: the first read of a fresh image is slower
    // CalculateImageHash puts any algorithm's digest in md5Sum, as ZStack does.
    const sets: Array<{ label: string; api: string; algs: string[]; fields: string[] }> = [
      { label: 'MD5', api: 'MD5', algs: ['md5'], fields: ['md5Sum'] },
      { label: 'SHA256', api: 'SHA256', algs: ['sha256'], fields: ['md5Sum'] },
    ];
    for (const set of sets) {
      const api: number[] = [];
      const direct: number[] = [];
      const pair: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        let t0 = performance.now();
        const res = await c.call(
          'PUT',
          `/images/${uuid}/actions`,
          { calculateImageHash: { backupStorageUuid: bs, algorithm: set.api } },
          {},
          600_000,
        );
        api.push((performance.now() - t0) / 1000);
        if (res.status !== 200) throw new Error(`CalculateImageHash failed: ${res.text}`);
        t0 = performance.now();
        const ref = await exportPipedInShell(`rbd/${uuid}`, set.algs, env);
        direct.push((performance.now() - t0) / 1000);
        const got = set.fields.map((f) => res.body.inventory[f]);
        if (JSON.stringify(got) !== JSON.stringify(ref))
          throw new Error(`${set.label} mismatch: API ${got.join(',')}, rbd export | openssl ${ref.join(',')}`);
        t0 = performance.now();
        const viaPair = await exportPipedToOpenssl(['export', '--no-progress', `rbd/${uuid}`, '-'], env, set.algs[0]);
        pair.push((performance.now() - t0) / 1000);
        if (viaPair !== ref[0]) throw new Error(`${set.label} mismatch between the two references`);
      }
      // The reference is the faster of the two ways to pipe rbd into openssl (see the header comment).
      const ref = Math.min(median(direct), median(pair));
      const ratio = ref / median(api);
      lines.push(
        `Ceph CalculateImageHash ${set.label} ${SIZE_MIB} MiB via API: median ${median(api).toFixed(3)} s (${(SIZE_MIB / median(api)).toFixed(0)} MiB/s) | ` +
          `rbd export - | openssl dgst: bash pipe median ${median(direct).toFixed(3)} s, Node socketpair median ${median(pair).toFixed(3)} s | ` +
          `ratio to the faster ${ratio.toFixed(3)} over ${ROUNDS} rounds (target >= ${HASH_TARGET}) ${ratio >= HASH_TARGET ? 'OK' : 'MISS'} | ${load()}`,
      );
    }
    {
      // MD5+SHA256 in one pass (what AddImage computes) vs rbd export | tee | two openssl processes.
      const api: number[] = [];
      const direct: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        let t0 = performance.now();
        const hashes = await server.app!.services.backupStorage.driver(row0).hash(`ceph://rbd/${uuid}`, ['MD5', 'SHA256']);
        api.push((performance.now() - t0) / 1000);
        t0 = performance.now();
        const ref = await exportPipedInShell(`rbd/${uuid}`, ['md5', 'sha256'], env);
        direct.push((performance.now() - t0) / 1000);
        if (hashes.MD5 !== ref[0] || hashes.SHA256 !== ref[1])
          throw new Error(`MD5+SHA256 mismatch: driver ${JSON.stringify(hashes)}, shell ${ref.join(',')}`);
      }
      const ratio = median(direct) / median(api);
      lines.push(
        `Ceph hash MD5+SHA256 ${SIZE_MIB} MiB (driver, one read): median ${median(api).toFixed(3)} s | ` +
          `rbd export - | tee | openssl dgst -md5 & -sha256: median ${median(direct).toFixed(3)} s | ` +
          `ratio ${ratio.toFixed(3)} over ${ROUNDS} rounds (target >= ${HASH_TARGET}) ${ratio >= HASH_TARGET ? 'OK' : 'MISS'} | ${load()}`,
      );
    }

    // SyncImageSize: latency and image bytes read per call (header reads through the helper).
    const row = await server.app!.services.backupStorage.require(bs);
    const driver = server.app!.services.backupStorage.driver(row) as CephDriver;
    const lat: number[] = [];
    const read: number[] = [];
    for (let i = 0; i < SYNC_CALLS; i++) {
      const before = driver.bytesRead;
      const t0 = performance.now();
      const res = await c.call('PUT', `/images/${uuid}/actions`, { syncImageSize: {} });
      lat.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`SyncImageSize failed: ${res.text}`);
      read.push(driver.bytesRead - before);
    }
    const helperRead = (await driver.helperCounters()).bytesRead;
    const cli: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await execFileP('rbd', ['info', '--format', 'json', `rbd/${uuid}`], { env });
      cli.push(performance.now() - t0);
    }
    lines.push(
      `Ceph SyncImageSize (${SIZE_MIB} MiB raw): median latency ${median(lat).toFixed(1)} ms over ${SYNC_CALLS} calls (goal < 20 ms) ${median(lat) < 20 ? 'OK' : 'MISS'} | ` +
        `image bytes read per call ${median(read)} (helper total ${helperRead} over ${SYNC_CALLS} calls + AddImage measuring) | ` +
        `for comparison one \`rbd info\` process: median ${median(cli).toFixed(1)} ms`,
    );
  } finally {
    await server.stop();
    await shutdownHashPool();
    await cluster.stop();
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Ctrl-C / timeout: exit normally so the cluster's exit hook kills its daemons.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  const dir = process.argv[2] ?? join(tmpdir(), 'zimage-bench-ceph');
  for (const line of await benchCeph(dir)) console.log(line);
}
