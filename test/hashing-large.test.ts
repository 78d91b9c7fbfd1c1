/** 4 GiB sparse file against openssl with bounded memory, and the compiled (production) build of the engine. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import {
  ENGINE_TS_URL,
  makeSparseFile,
  makeTempDir,
  MiB,
  opensslDigests,
  REPO_ROOT,
  runNodeModule,
  writeRandomFile,
} from './helpers/hashing-fixtures.js';

const execFileP = promisify(execFile);
const FOUR_GIB = 4096 * MiB;
let tmp: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  tmp = await makeTempDir('hashing-large');
});

after(async () => {
  await tmp?.cleanup();
});

test(
  '4 GiB sparse file: MD5+SHA256 in one pass equal openssl, peak RSS of the hashing process < 200 MB',
  { timeout: 400_000 },
  async () => {
    const sparse = await makeSparseFile(tmp.dir, 'sparse-4g.img', FOUR_GIB);
    const code = `
    import { hashFile } from ${JSON.stringify(ENGINE_TS_URL)};
    let bytes = 0;
    const digests = await hashFile(${JSON.stringify(sparse)}, { algorithms: ['MD5', 'SHA256'], onProgress: (b) => (bytes = b) });
    process.stdout.write(JSON.stringify({ digests, bytes, maxRssKiB: process.resourceUsage().maxRSS }));
  `;
    // the engine's child and the two reference processes share the page cache of the holes
    const [child, expected] = await Promise.all([runNodeModule(code, { timeoutMs: 390_000 }), opensslDigests(['MD5', 'SHA256'], sparse)]);
    assert.equal(child.code, 0, child.stderr);
    const out = JSON.parse(child.stdout) as { digests: Record<string, string>; bytes: number; maxRssKiB: number };
    assert.equal(out.bytes, FOUR_GIB, 'every byte hashed');
    assert.deepEqual(out.digests, expected);
    const rssMB = (out.maxRssKiB * 1024) / 1e6;
    assert.ok(rssMB < 200, `peak RSS ${rssMB.toFixed(1)} MB`);
    assert.ok(rssMB > 10, `peak RSS ${rssMB.toFixed(1)} MB is a plausible measurement`);
  },
);

test('compiled with tsc (production layout, no tsx), the engine runs its workers and digests correctly', { timeout: 60_000 }, async () => {
  const out = join(tmp.dir, 'build');
  const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
  await execFileP(
    process.execPath,
    [
      tsc,
      '--outDir',
      out,
      '--rootDir',
      REPO_ROOT,
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      '--target',
      'ES2022',
      '--strict',
      '--skipLibCheck',
      '--types',
      'node',
      join(REPO_ROOT, 'src/hashing/index.ts'),
    ],
    { cwd: REPO_ROOT },
  );
  await writeFile(join(out, 'package.json'), '{ "type": "module" }\n');
  const entry = pathToFileURL(join(out, 'src/hashing/index.js')).href;
  const f = await writeRandomFile(tmp.dir, 'prod.bin', 9 * MiB + 3);
  const code = `
    import { hashFile, hashStream, hashPoolStats } from ${JSON.stringify(entry)};
    import { createReadStream } from 'node:fs';
    const a = await hashFile(${JSON.stringify(f.path)}, { algorithms: ['MD5', 'SHA256', 'SM3'] });
    const b = await hashStream(createReadStream(${JSON.stringify(f.path)}), { algorithms: ['SHA1', 'SHA512'] });
    process.stdout.write(JSON.stringify({ ...a, ...b, workers: hashPoolStats().workers, tsx: process.execArgv.includes('tsx') }));
  `;
  const [child, expected] = await Promise.all([
    runNodeModule(code, { tsx: false, timeoutMs: 30_000 }),
    opensslDigests(['MD5', 'SHA256', 'SM3', 'SHA1', 'SHA512'], f.path),
  ]);
  assert.equal(child.code, 0, child.stderr);
  const got = JSON.parse(child.stdout) as Record<string, unknown>;
  assert.equal(got.tsx, false, 'ran without the tsx loader');
  assert.equal(got.workers, 3, 'hashed on worker threads');
  delete got.workers;
  delete got.tsx;
  assert.deepEqual(got, expected);
});
