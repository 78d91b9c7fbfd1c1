/**
 * SFTP backup storage benchmark, against a real sshd on 127.0.0.1 (test/helpers/sshd.ts):
 *  - CalculateImageHash (MD5) of a 1 GiB image through the HTTP API, vs `openssl dgst -md5` run directly on
 *    the stored file (the host is this machine). Several interleaved rounds, medians, ratio (target >= 0.9).
 *  - SyncImageSize: bytes on the SSH wire per call (and SFTP payload), remote commands, median latency.
 * `node --import tsx bench/sftp.ts [workDir]` prints the report.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { SftpDriver } from '../src/storage/sftp/driver.js';
import { PASSWORD_USER, startSshd, userDir } from '../test/helpers/sshd.js';
import { startInProcess } from '../test/helpers/zimage.js';
import { ensureRandomFile, median } from './util.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;
const ROUNDS = 5;
const SYNC_CALLS = 20;

export async function benchSftp(workDir: string): Promise<string[]> {
  const lines: string[] = [];
  await mkdir(workDir, { recursive: true });
  const fixtures = join(workDir, 'sftp-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, 'random-1GiB.raw');
  await ensureRandomFile(source, 1024 * MiB);

  const sshd = await startSshd();
  const storageDir = join(workDir, 'sftp-storage');
  await rm(storageDir, { recursive: true, force: true });
  await userDir(storageDir);
  const server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
  try {
    const c = server.client;
    await c.login();
    const add = await c.call('POST', '/backup-storage/sftp', {
      params: {
        name: 'bench',
        hostname: '127.0.0.1',
        sshPort: sshd.port,
        username: PASSWORD_USER,
        privateKey: sshd.clientKey,
        url: storageDir,
      },
    });
    if (add.status !== 200) throw new Error(`AddSftpBackupStorage failed: ${add.text}`);
    const bs = add.body.inventory.uuid as string;

    let t0 = performance.now();
    const img = await c.call(
      'POST',
      '/images',
      { params: { name: 'bench-1GiB', url: `file://${source}`, format: 'raw', backupStorageUuids: [bs] } },
      {},
      600_000,
    );
    if (img.status !== 200) throw new Error(`AddImage failed: ${img.text}`);
    const importSecs = (performance.now() - t0) / 1000;
    const uuid = img.body.inventory.uuid as string;
    const installPath = img.body.inventory.backupStorageRefs[0].installPath as string;
    lines.push(
      `SFTP AddImage 1 GiB (file:// -> ssh -> dd on the host, MD5+SHA256 in the same pass): ${(1024 / importSecs).toFixed(0)} MiB/s`,
    );

    // Warm the page cache for both contenders, then interleave the rounds.
    await execFileP('openssl', ['dgst', '-md5', '-r', installPath]);
    const api: number[] = [];
    const direct: number[] = [];
    let apiDigest = '';
    let directDigest = '';
    for (let i = 0; i < ROUNDS; i++) {
      t0 = performance.now();
      const res = await c.call(
        'PUT',
        `/images/${uuid}/actions`,
        { calculateImageHash: { backupStorageUuid: bs, algorithm: 'MD5' } },
        {},
        600_000,
      );
      api.push((performance.now() - t0) / 1000);
      if (res.status !== 200) throw new Error(`CalculateImageHash failed: ${res.text}`);
      apiDigest = res.body.inventory.md5Sum;
      t0 = performance.now();
      const { stdout } = await execFileP('openssl', ['dgst', '-md5', '-r', installPath]);
      direct.push((performance.now() - t0) / 1000);
      directDigest = stdout.split(' ')[0]!;
    }
    if (apiDigest !== directDigest) throw new Error(`MD5 mismatch: API ${apiDigest}, openssl ${directDigest}`);
    const ratio = median(direct) / median(api);
    lines.push(
      `SFTP CalculateImageHash MD5 1 GiB via API: median ${median(api).toFixed(3)} s (${(1024 / median(api)).toFixed(0)} MiB/s) | ` +
        `openssl dgst -md5 on the host: median ${median(direct).toFixed(3)} s (${(1024 / median(direct)).toFixed(0)} MiB/s) | ` +
        `ratio ${ratio.toFixed(3)} over ${ROUNDS} rounds (target >= 0.9) ${ratio >= 0.9 ? 'OK' : 'MISS'}`,
    );

    const row = await server.app!.services.backupStorage.require(bs);
    const driver = server.app!.services.backupStorage.driver(row) as SftpDriver;
    const lat: number[] = [];
    const wire: number[] = [];
    const sftpRead: number[] = [];
    const commands: number[] = [];
    for (let i = 0; i < SYNC_CALLS; i++) {
      const before = driver.stats();
      t0 = performance.now();
      const res = await c.call('PUT', `/images/${uuid}/actions`, { syncImageSize: {} });
      lat.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`SyncImageSize failed: ${res.text}`);
      const after = driver.stats();
      wire.push(after.bytesIn - before.bytesIn + (after.bytesOut - before.bytesOut));
      sftpRead.push(after.sftpBytesRead - before.sftpBytesRead);
      commands.push(after.commands - before.commands);
    }
    lines.push(
      `SFTP SyncImageSize (1 GiB raw): median latency ${median(lat).toFixed(1)} ms over ${SYNC_CALLS} calls | ` +
        `SSH wire bytes per call ${median(wire)} (both directions, incl. the connect check) | image bytes read over SFTP per call ${median(sftpRead)} | ` +
        `remote commands per call ${median(commands)} (connect check + stat)`,
    );
  } finally {
    await server.stop();
    await sshd.close();
    await rm(storageDir, { recursive: true, force: true });
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? join(tmpdir(), 'zimage-bench-sftp');
  for (const line of await benchSftp(dir)) console.log(line);
}
