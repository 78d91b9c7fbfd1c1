/**
 * The Ceph helper (src/storage/ceph/rados_helper.py) without a cluster: pyflakes3 lint, and its Python unit
 * tests (test/ceph-helper/) against fake rados/rbd modules. The driver is tested with it against a real
 * cluster in storage-ceph.test.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { helperScript } from '../src/storage/ceph/helper.js';
import { ROOT } from './helpers/zimage.js';

const run = promisify(execFile);
const HELPER = join(ROOT, 'src/storage/ceph/rados_helper.py');
const TESTS = join(ROOT, 'test/ceph-helper');

test('the driver finds rados_helper.py from src/ (and dist/ resolves the same file)', () => {
  assert.equal(helperScript(), HELPER);
  assert.ok(existsSync(join(ROOT, 'dist/src/storage/ceph/helper.js')), 'run `npm run -s build` first');
});

test('the compiled driver finds rados_helper.py from dist/', async () => {
  const { stdout } = await run(process.execPath, [
    '--input-type=module',
    '-e',
    `import { helperScript } from ${JSON.stringify(join(ROOT, 'dist/src/storage/ceph/helper.js'))}; console.log(helperScript());`,
  ]);
  assert.equal(stdout.trim(), HELPER);
});

test('pyflakes3 finds nothing in the helper and its tests', async () => {
  // Throws (with pyflakes3's report) on any finding: exit status 1.
  const { stdout, stderr } = await run('pyflakes3', [HELPER, TESTS]);
  assert.equal(stdout + stderr, '');
});

test('the helper passes its unit tests against fake rados/rbd modules', async () => {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONPATH: `${join(TESTS, 'fake')}:${join(ROOT, 'src/storage/ceph')}`,
  };
  let out: { stdout: string; stderr: string };
  try {
    out = await run('python3', ['-m', 'unittest', 'discover', '-v', '-s', TESTS, '-p', 'test_*.py'], { env, timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    assert.fail(`python3 unittest failed:\n${e.stderr ?? e.message}`);
  }
  const summary = /Ran (\d+) tests?/.exec(out.stderr);
  assert.ok(summary && Number(summary[1]) >= 20, `expected at least 20 Python tests:\n${out.stderr}`);
  assert.match(out.stderr, /\nOK\s*$/);
});
