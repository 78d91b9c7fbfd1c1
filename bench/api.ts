/**
 * Hashing and importing through the HTTP API, against the reference tools in the same run:
 * CalculateImageHash vs `openssl dgst`, and AddImage from a local HTTP server vs
 * `curl -s URL | tee FILE | openssl dgst -md5`. `node --import tsx bench/api.ts [workDir]` prints the report.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startInProcess } from '../test/helpers/zimage.js';
import { ensureRandomFile, median, warm } from './util.js';

const MiB = 1 << 20;

/** Runs `a | b | c` without a shell; resolves with the last command's stdout. */
function pipeline(cmds: string[][]): Promise<string> {
  return new Promise((resolve, reject) => {
    const procs = cmds.map(([cmd, ...args]) => spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
    for (let i = 0; i + 1 < procs.length; i++) procs[i]!.stdout.pipe(procs[i + 1]!.stdin);
    procs[0]!.stdin.end();
    let out = '';
    procs.at(-1)!.stdout.on('data', (d) => (out += d));
    let pending = procs.length;
    for (const p of procs) {
      p.on('error', reject);
      p.on('exit', (code) => {
        if (code !== 0) reject(new Error(`${p.spawnargs.join(' ')} exited with ${code}`));
        else if (--pending === 0) resolve(out);
      });
    }
  });
}

export function serveFile(path: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    stat(path).then(
      (st) => {
        res.writeHead(200, { 'Content-Length': st.size, 'Content-Type': 'application/octet-stream' });
        createReadStream(path, { highWaterMark: 4 * MiB }).pipe(res);
      },
      (err: Error) => res.destroy(err),
    );
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.raw`,
        close: () => new Promise((r) => server.close(() => r())),
      }),
    ),
  );
}

export async function benchApi(workDir: string, opts: { sizeMiB?: number; rounds?: number } = {}): Promise<string[]> {
  const sizeMiB = opts.sizeMiB ?? 1024;
  const rounds = opts.rounds ?? 3;
  const lines: string[] = [];
  const fixtures = join(workDir, 'api-fixtures');
  await mkdir(fixtures, { recursive: true });
  const source = join(fixtures, `random-${sizeMiB}MiB.raw`);
  await ensureRandomFile(source, sizeMiB * MiB);
  const run = join(workDir, 'api-run');
  await rm(run, { recursive: true, force: true });
  await mkdir(join(run, 'storage'), { recursive: true });
  const server = await startInProcess({ dataDir: join(run, 'data') }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures });
  const httpSource = await serveFile(source);
  try {
    const c = server.client;
    await c.login();
    const bs = (await c.addLocalStorage(join(run, 'storage'))).uuid;
    const added = await c.call(
      'POST',
      '/images',
      { params: { name: 'bench', url: `file://${source}`, format: 'raw', backupStorageUuids: [bs] } },
      {},
      600_000,
    );
    if (added.status !== 200) throw new Error(`AddImage failed: ${added.text}`);
    const uuid = added.body.inventory.uuid as string;
    const stored = added.body.inventory.backupStorageRefs[0].installPath as string;
    await warm(stored);

    lines.push(`API bench: ${sizeMiB} MiB random file in page cache, ${rounds} rounds, medians`);
    for (const alg of ['MD5', 'SHA256', 'SHA512']) {
      const api: number[] = [];
      const ref: number[] = [];
      for (let i = 0; i < rounds; i++) {
        let t0 = performance.now();
        const res = await c.call(
          'PUT',
          `/images/${uuid}/actions`,
          { calculateImageHash: { backupStorageUuid: bs, algorithm: alg } },
          {},
          600_000,
        );
        api.push((performance.now() - t0) / 1000);
        t0 = performance.now();
        const out = await pipeline([['openssl', 'dgst', `-${alg.toLowerCase()}`, '-r', stored]]);
        ref.push((performance.now() - t0) / 1000);
        if (res.body?.inventory?.md5Sum !== out.split(' ')[0]) throw new Error(`${alg}: API ${res.text.slice(0, 200)} vs openssl ${out}`);
      }
      const ratio = median(ref) / median(api);
      lines.push(
        `CalculateImageHash ${alg.padEnd(6)} via API ${(sizeMiB / median(api)).toFixed(0).padStart(5)} MiB/s | openssl dgst ${(sizeMiB / median(ref)).toFixed(0).padStart(5)} MiB/s | ratio ${ratio.toFixed(3)} (target >= 0.95) ${ratio >= 0.95 ? 'OK' : 'MISS'}`,
      );
    }

    const api: number[] = [];
    const ref: number[] = [];
    const copy = join(run, 'curl-copy.raw');
    for (let i = 0; i < rounds; i++) {
      let t0 = performance.now();
      const res = await c.call(
        'POST',
        '/images',
        { params: { name: `import-${i}`, url: httpSource.url, format: 'raw', backupStorageUuids: [bs] } },
        {},
        600_000,
      );
      api.push((performance.now() - t0) / 1000);
      if (res.status !== 200) throw new Error(`AddImage failed: ${res.text}`);
      await rm(res.body.inventory.backupStorageRefs[0].installPath, { force: true });
      t0 = performance.now();
      await pipeline([
        ['curl', '-s', httpSource.url],
        ['tee', copy],
        ['openssl', 'dgst', '-md5'],
      ]);
      ref.push((performance.now() - t0) / 1000);
      await rm(copy, { force: true });
    }
    const ratio = median(ref) / median(api);
    lines.push(
      `AddImage from local HTTP (copy + MD5 + SHA256 + inspect) ${(sizeMiB / median(api)).toFixed(0).padStart(5)} MiB/s | curl | tee | openssl dgst -md5 ${(sizeMiB / median(ref)).toFixed(0).padStart(5)} MiB/s | ratio ${ratio.toFixed(3)} (target >= 0.8) ${ratio >= 0.8 ? 'OK' : 'MISS'}`,
    );
  } finally {
    await httpSource.close();
    await server.stop();
    await rm(run, { recursive: true, force: true });
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await benchApi(process.argv[2] ?? join(tmpdir(), 'zimage-bench'))) console.log(line);
}
