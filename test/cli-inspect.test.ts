/** `zimage inspect FILE --json` prints what the server would record, shaped like `qemu-img info --output=json`. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { execFileP, qemuInfo, ROOT, tempDir } from './helpers/zimage.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli.js');
let dir: string;

before(async () => {
  dir = await tempDir();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const [fmt, qemuFmt, opts] of [
  ['qcow2', 'qcow2', []],
  ['vmdk', 'vmdk', ['-o', 'subformat=streamOptimized']],
  ['vhd', 'vpc', []],
  ['vhdx', 'vhdx', []],
  ['vdi', 'vdi', []],
] as const) {
  test(`inspect --json matches qemu-img info for ${fmt}`, async () => {
    const file = join(dir, `a.${fmt}`);
    await execFileP('qemu-img', ['create', '-q', '-f', qemuFmt, ...opts, file, '3G']);
    const { stdout } = await run(process.execPath, [CLI, 'inspect', file, '--json']);
    const ours = JSON.parse(stdout);
    const ref = await qemuInfo(file, qemuFmt);
    for (const key of ['format', 'virtual-size', 'actual-size'] as const) assert.equal(ours[key], ref[key], key);
    assert.equal(ours.zimage.safety.ok, true);
  });
}

test('inspect exits 3 and names the check for an unsafe image', async () => {
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', base, '1G']);
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  await assert.rejects(run(process.execPath, [CLI, 'inspect', top]), (err: { code: number; stdout: string }) => {
    assert.equal(err.code, 3);
    assert.match(err.stdout, /safe: NO/);
    assert.match(err.stdout, /backing/);
    return true;
  });
});

test('inspect of a missing file is a clear error, exit 1', async () => {
  await assert.rejects(run(process.execPath, [CLI, 'inspect', join(dir, 'nope.img')]), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /zimage inspect: .*nope\.img/);
    return true;
  });
});
