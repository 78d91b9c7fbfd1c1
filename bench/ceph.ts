/**
 * Ceph RBD backup storage benchmark, against a real one-node Ceph (scripts/ceph-test-cluster.sh, memstore
 * OSD on 127.0.0.1, auth none):
 *  - CalculateImageHash (MD5) of a 512 MiB image through the HTTP API vs `rbd export pool/img - | openssl
 *    dgst -md5` (two processes piped to each other by Node, no shell), interleaved rounds, medians, ratio
 *    (target >= 0.9);
 *  - SyncImageSize: image bytes read per call and median latency through the API (goal < 20 ms), and for
 *    comparison the cost of one `rbd info` run (what a CLI-only driver would pay per metadata call);
 *  - AddImage of the same 512 MiB file into Ceph through the API (MD5 + SHA-256 in the same pass) vs
 *    `rbd import <file> pool/img`, interleaved rounds, medians, ratio (target >= 0.8).
 * `node --import tsx bench/ceph.ts [workDir]` prints the report.
 */
import { execFile, spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { CephDriver } from '../src/storage/ceph/driver.js';
import { shutdownHashPool } from '../src/hashing/pool.js';
import { startCephCluster } from '../test/helpers/ceph.js';
import { startInProcess } from '../test/helpers/zimage.js';
import { ensureRandomFile, median } from './util.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;
const SIZE_MIB = 512;
const ROUNDS = 5;
const SYNC_CALLS = 30;

const debug = (...a: unknown[]): void => {
  if (process.env.BENCH_DEBUG) console.error('[bench]', ...a);
};



/** `rbd export <spec> - | openssl dgst -md5`: rbd's stdout is openssl's stdin (a kernel pipe, no copy through Node). */
function exportPipedToOpenssl(rbdArgs: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const rbd = spawn('rbd', rbdArgs, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const ossl = spawn('openssl', ['dgst', '-md5', '-r'], { stdio: [rbd.stdout, 'pipe', 'inherit'] });
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

export async function benchCeph(workDir: string): Promise<string[]> {
  const lines: string[] = [];
  await mkdir(workDir, { recursive: true });
  const fixtures = join(workDir, 'ceph-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, `random-${SIZE_MIB}MiB.raw`);
  await ensureRandomFile(source, SIZE_MIB * MiB);

  const cluster = await startCephCluster({ name: 'bench', monPort: 33300, memstoreBytes: 6 * 1024 * MiB });
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
    // Also the driver's storage path alone (file -> rbd import -, no hashing), to separate it from hashing.
    const row0 = await server.app!.services.backupStorage.require(bs);
    const driver0 = server.app!.services.backupStorage.driver(row0) as CephDriver;
    const apiAdd: number[] = [];
    const cliImport: number[] = [];
    const driverOnly: number[] = [];
    let uuid = '';
    for (let i = 0; i < ROUNDS; i++) {
      let t0 = performance.now();
      const img = await c.call('POST', '/images', { params: { name: `bench-${i}`, url: `file://${source}`, format: 'raw', backupStorageUuids: [bs] } }, {}, 600_000);
      apiAdd.push((performance.now() - t0) / 1000);
      debug('AddImage', i, img.status, apiAdd[i]);
      if (img.status !== 200) throw new Error(`AddImage failed: ${img.text}`);
      if (i > 0) await cluster.rbd(['rm', '--no-progress', `rbd/${img.body.inventory.uuid}`]);
      else uuid = img.body.inventory.uuid as string;
      t0 = performance.now();
      await execFileP('rbd', ['import', '--no-progress', source, `rbd/cli-import-${i}`], { env });
      cliImport.push((performance.now() - t0) / 1000);
      debug('rbd import', i, cliImport[i]);
      await cluster.rbd(['rm', '--no-progress', `rbd/cli-import-${i}`]);
      t0 = performance.now();
      const target = await driver0.createImport(`driver-only-${i}`);
      await pipeline(createReadStream(source, { highWaterMark: MiB }), target.stream);
      await target.commit();
      driverOnly.push((performance.now() - t0) / 1000);
      await driver0.delete(target.installPath);
    }
    const addRatio = median(cliImport) / median(apiAdd);
    lines.push(
      `Ceph AddImage ${SIZE_MIB} MiB via API (file:// -> rbd import -, MD5+SHA256 in the same pass): median ${median(apiAdd).toFixed(3)} s (${(SIZE_MIB / median(apiAdd)).toFixed(0)} MiB/s) | ` +
        `rbd import <file>: median ${median(cliImport).toFixed(3)} s (${(SIZE_MIB / median(cliImport)).toFixed(0)} MiB/s) | ` +
        `ratio ${addRatio.toFixed(3)} over ${ROUNDS} rounds (target >= 0.8) ${addRatio >= 0.8 ? 'OK' : 'MISS'} | ` +
        `driver storage path alone (no hashing): median ${median(driverOnly).toFixed(3)} s, ratio ${(median(cliImport) / median(driverOnly)).toFixed(3)}`,
    );

    // CalculateImageHash vs rbd export | openssl dgst -md5, interleaved.
    await exportPipedToOpenssl(['export', '--no-progress', `rbd/${uuid}`, '-'], env); // warm-up
    const api: number[] = [];
    const direct: number[] = [];
    let apiDigest = '';
    let directDigest = '';
    for (let i = 0; i < ROUNDS; i++) {
      let t0 = performance.now();
      const res = await c.call('PUT', `/images/${uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: 'MD5' } }, {}, 600_000);
      api.push((performance.now() - t0) / 1000);
      if (res.status !== 200) throw new Error(`CalculateImageHash failed: ${res.text}`);
      apiDigest = res.body.inventory.md5Sum;
      t0 = performance.now();
      directDigest = await exportPipedToOpenssl(['export', '--no-progress', `rbd/${uuid}`, '-'], env);
      direct.push((performance.now() - t0) / 1000);
    }
    if (apiDigest !== directDigest) throw new Error(`MD5 mismatch: API ${apiDigest}, rbd export | openssl ${directDigest}`);
    const ratio = median(direct) / median(api);
    lines.push(
      `Ceph CalculateImageHash MD5 ${SIZE_MIB} MiB via API: median ${median(api).toFixed(3)} s (${(SIZE_MIB / median(api)).toFixed(0)} MiB/s) | ` +
        `rbd export - | openssl dgst -md5: median ${median(direct).toFixed(3)} s (${(SIZE_MIB / median(direct)).toFixed(0)} MiB/s) | ` +
        `ratio ${ratio.toFixed(3)} over ${ROUNDS} rounds (target >= 0.9) ${ratio >= 0.9 ? 'OK' : 'MISS'}`,
    );

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
