/**
 * Generated fixtures (qemu-img, genisoimage, parted) inspected in-process and compared, field by field,
 * with `qemu-img info -f <fmt> --output=json` — qemu-img 7.2 is the oracle.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ImageFormat, qemuFormatName } from '../src/formats/inspect.js';
import { toQemuImgInfo } from '../src/formats/qemu-info.js';
import { failureIds, inspectFile, makeTempDir, pseudoRandom, qemuImg, qemuInfo, tool } from './helpers/formats-fixtures.js';

interface Fixture {
  name: string;
  file: string;
  make: (dir: string) => Promise<unknown>;
  format: ImageFormat;
  /** Expected failure ids; [] = safe. */
  failures: string[];
  details?: Record<string, unknown>;
  /** Multi-file images: qemu sums the allocation of every file. */
  skipActualSize?: boolean;
  expectedSize?: number;
}

const SECRET = ['--object', 'secret,id=s0,data=pw'];
const create = (dir: string, ...args: string[]) => qemuImg(['create', '-q', ...args], dir);

const fixtures: Fixture[] = [
  {
    name: 'qcow2 v3 10G',
    file: 'v3.qcow2',
    make: (d) => create(d, '-f', 'qcow2', 'v3.qcow2', '10G'),
    format: 'qcow2',
    failures: [],
    details: { version: 3, compat: '1.1', headerLength: 112 },
    expectedSize: 10737418240,
  },
  {
    name: 'qcow2 v2 1G',
    file: 'v2.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'compat=0.10', 'v2.qcow2', '1G'),
    format: 'qcow2',
    failures: [],
    details: { version: 2, compat: '0.10' },
  },
  {
    name: 'qcow2 65537 bytes',
    file: 'odd.qcow2',
    make: (d) => create(d, '-f', 'qcow2', 'odd.qcow2', '65537'),
    format: 'qcow2',
    failures: [],
  },
  {
    name: 'qcow2 1000 bytes',
    file: 'k.qcow2',
    make: (d) => create(d, '-f', 'qcow2', 'k.qcow2', '1000'),
    format: 'qcow2',
    failures: [],
    expectedSize: 1024,
  },
  {
    name: 'qcow2 2 TiB',
    file: 'big.qcow2',
    make: (d) => create(d, '-f', 'qcow2', 'big.qcow2', '2T'),
    format: 'qcow2',
    failures: [],
    expectedSize: 2 * 1024 ** 4,
  },
  {
    name: 'qcow2 preallocation=metadata',
    file: 'pm.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'preallocation=metadata', 'pm.qcow2', '64M'),
    format: 'qcow2',
    failures: [],
  },
  {
    name: 'qcow2 preallocation=full',
    file: 'pf.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'preallocation=full', 'pf.qcow2', '16M'),
    format: 'qcow2',
    failures: [],
  },
  {
    name: 'qcow2 compressed (convert -c)',
    file: 'c.qcow2',
    make: (d) => qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', '-c', 'data.raw', 'c.qcow2'], d),
    format: 'qcow2',
    failures: [],
    expectedSize: 1000448,
  },
  {
    name: 'qcow2 with backing file',
    file: 'back.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-b', 'v3.qcow2', '-F', 'qcow2', 'back.qcow2'),
    format: 'qcow2',
    failures: ['qcow2-backing-file'],
    details: { backingFile: 'v3.qcow2', backingFileFormat: 'qcow2', backingFileOffset: 528 },
  },
  {
    name: 'qcow2 with data file',
    file: 'df.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'data_file=ext.raw', 'df.qcow2', '1G'),
    format: 'qcow2',
    failures: ['qcow2-data-file'],
    details: { dataFile: 'ext.raw' },
  },
  {
    name: 'qcow2 extended_l2',
    file: 'el2.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', 'el2.qcow2', '1G'),
    format: 'qcow2',
    failures: ['qcow2-unknown-features'],
    details: { extendedL2: true, clusterSize: 131072 },
  },
  {
    name: 'qcow2 zstd',
    file: 'z.qcow2',
    make: (d) => create(d, '-f', 'qcow2', '-o', 'compression_type=zstd', 'z.qcow2', '1G'),
    format: 'qcow2',
    failures: [],
    details: { compressionType: 'zstd' },
  },
  {
    name: 'qcow2 LUKS-encrypted',
    file: 'enc.qcow2',
    make: (d) =>
      create(d, ...SECRET, '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', 'enc.qcow2', '32M'),
    format: 'qcow2',
    failures: [],
    details: { encrypted: true, cryptMethod: 'luks' },
  },
  {
    name: 'vmdk monolithicSparse 10G',
    file: 's.vmdk',
    make: (d) => create(d, '-f', 'vmdk', 's.vmdk', '10G'),
    format: 'vmdk',
    failures: [],
    details: { createType: 'monolithicSparse', version: 1, capacitySectors: 20971520 },
  },
  {
    name: 'vmdk monolithicSparse 65537',
    file: 'so2.vmdk',
    make: (d) => create(d, '-f', 'vmdk', 'so2.vmdk', '65537'),
    format: 'vmdk',
    failures: [],
  },
  {
    name: 'vmdk streamOptimized 10G',
    file: 'so.vmdk',
    make: (d) => create(d, '-f', 'vmdk', '-o', 'subformat=streamOptimized', 'so.vmdk', '10G'),
    format: 'vmdk',
    failures: [],
    details: { createType: 'streamOptimized', version: 3, compressed: true },
  },
  {
    name: 'vmdk streamOptimized with data',
    file: 'sod.vmdk',
    make: (d) => qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'data.raw', 'sod.vmdk'], d),
    format: 'vmdk',
    failures: [],
  },
  {
    name: 'vmdk monolithicFlat',
    file: 'flat.vmdk',
    make: (d) => create(d, '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'flat.vmdk', '1G'),
    format: 'vmdk',
    failures: ['vmdk-create-type'],
    details: { subformat: 'descriptor', createType: 'monolithicFlat' },
    skipActualSize: true,
  },
  {
    name: 'vpc dynamic 10G (CHS)',
    file: 'd.vhd',
    make: (d) => create(d, '-f', 'vpc', 'd.vhd', '10G'),
    format: 'vhd',
    failures: [],
    details: { diskType: 'dynamic', creatorApp: 'qemu', sizeFrom: 'chs' },
    expectedSize: 10737893376,
  },
  {
    name: 'vpc dynamic force_size 10G',
    file: 'q2.vhd',
    make: (d) => create(d, '-f', 'vpc', '-o', 'force_size=on', 'q2.vhd', '10G'),
    format: 'vhd',
    failures: [],
    details: { creatorApp: 'qem2', sizeFrom: 'current_size' },
    expectedSize: 10737418240,
  },
  { name: 'vpc dynamic 65537', file: 'odd.vhd', make: (d) => create(d, '-f', 'vpc', 'odd.vhd', '65537'), format: 'vhd', failures: [] },
  {
    name: 'vpc fixed force_size 64M',
    file: 'ff.vhd',
    make: (d) => create(d, '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', 'ff.vhd', '64M'),
    format: 'vhd',
    failures: [],
    details: { diskType: 'fixed', footerAt: 'end' },
    expectedSize: 67108864,
  },
  {
    name: 'vpc fixed 64M (CHS)',
    file: 'f.vhd',
    make: (d) => create(d, '-f', 'vpc', '-o', 'subformat=fixed', 'f.vhd', '64M'),
    format: 'vhd',
    failures: [],
    details: { diskType: 'fixed' },
  },
  {
    name: 'vhdx 10G',
    file: 'a.vhdx',
    make: (d) => create(d, '-f', 'vhdx', 'a.vhdx', '10G'),
    format: 'vhdx',
    failures: [],
    details: { blockSize: 16777216, logicalSectorSize: 512 },
    expectedSize: 10737418240,
  },
  { name: 'vhdx 65537', file: 'odd.vhdx', make: (d) => create(d, '-f', 'vhdx', 'odd.vhdx', '65537'), format: 'vhdx', failures: [] },
  {
    name: 'vhdx with data',
    file: 'data.vhdx',
    make: (d) => qemuImg(['convert', '-f', 'raw', '-O', 'vhdx', 'data.raw', 'data.vhdx'], d),
    format: 'vhdx',
    failures: [],
  },
  {
    name: 'vdi 10G',
    file: 'a.vdi',
    make: (d) => create(d, '-f', 'vdi', 'a.vdi', '10G'),
    format: 'vdi',
    failures: [],
    expectedSize: 10737418240,
  },
  { name: 'vdi 65537', file: 'odd.vdi', make: (d) => create(d, '-f', 'vdi', 'odd.vdi', '65537'), format: 'vdi', failures: [] },
  { name: 'qed 10G', file: 'a.qed', make: (d) => create(d, '-f', 'qed', 'a.qed', '10G'), format: 'qed', failures: ['qed-unsupported'] },
  {
    name: 'luks 16M',
    file: 'a.luks',
    make: (d) => create(d, ...SECRET, '-f', 'luks', '-o', 'key-secret=s0,iter-time=10', 'a.luks', '16M'),
    format: 'luks',
    failures: [],
    details: { version: 1 },
    expectedSize: 16777216,
  },
  {
    name: 'raw sparse 1G',
    file: 'sparse.raw',
    make: (d) => writeFile(join(d, 'sparse.raw'), '').then(() => truncate(join(d, 'sparse.raw'), 1024 ** 3)),
    format: 'raw',
    failures: [],
    expectedSize: 1024 ** 3,
  },
  {
    name: 'raw dense',
    file: 'data.raw',
    make: () => Promise.resolve() /* made in before() */,
    format: 'raw',
    failures: [],
    expectedSize: 1000448,
  },
  {
    name: 'raw odd length 1000',
    file: 'odd.raw',
    make: (d) => writeFile(join(d, 'odd.raw'), pseudoRandom(1000, 7)),
    format: 'raw',
    failures: [],
    expectedSize: 1024,
  },
  { name: 'raw empty', file: 'empty.raw', make: (d) => writeFile(join(d, 'empty.raw'), ''), format: 'raw', failures: [], expectedSize: 0 },
  {
    name: 'iso (genisoimage)',
    file: 'a.iso',
    make: () => Promise.resolve() /* made in before() */,
    format: 'iso',
    failures: [],
    details: { standard: 'iso9660', logicalBlockSize: 2048 },
  },
  {
    name: 'hybrid iso + gpt',
    file: 'hybrid.iso',
    make: async (d) => {
      await copyFile(join(d, 'a.iso'), join(d, 'hybrid.iso'));
      await tool('parted', ['-s', join(d, 'hybrid.iso'), 'mklabel', 'gpt']);
    },
    format: 'iso',
    failures: [],
    details: { matched: ['iso', 'gpt'] },
  },
  {
    name: 'gpt disk (parted)',
    file: 'gpt.img',
    make: async (d) => {
      const f = join(d, 'gpt.img');
      await writeFile(f, '');
      await truncate(f, 64 * 1024 ** 2);
      await tool('parted', ['-s', f, 'mklabel', 'gpt', 'mkpart', 'p1', '1MiB', '100%']);
    },
    format: 'raw',
    failures: [],
    details: { partitionTable: 'gpt', matched: ['gpt'] },
  },
  {
    name: 'mbr disk (parted)',
    file: 'mbr.img',
    make: async (d) => {
      const f = join(d, 'mbr.img');
      await writeFile(f, '');
      await truncate(f, 64 * 1024 ** 2);
      await tool('parted', ['-s', f, 'mklabel', 'msdos', 'mkpart', 'primary', '1MiB', '100%']);
    },
    format: 'raw',
    failures: [],
    details: { partitionTable: 'mbr', matched: ['mbr'] },
  },
  {
    name: 'mbr with no partition (parted)',
    file: 'mbr0.img',
    make: async (d) => {
      const f = join(d, 'mbr0.img');
      await writeFile(f, '');
      await truncate(f, 8 * 1024 ** 2);
      await tool('parted', ['-s', f, 'mklabel', 'msdos']);
    },
    format: 'raw',
    failures: ['mbr-no-partitions'],
    details: { partitionTable: 'mbr' },
  },
];

let dir = '';
let cleanup: () => Promise<void> = () => Promise.resolve();

before(async () => {
  ({ dir, cleanup } = await makeTempDir());
  // Shared inputs first: a dense raw of 1 000 000 bytes (not a multiple of 512) and an ISO.
  const data = pseudoRandom(1_000_000, 12345);
  data[510] = 0; // keep it from looking like an MBR
  await writeFile(join(dir, 'data.raw'), data);
  await mkdir(join(dir, 'isodir'));
  await writeFile(join(dir, 'isodir', 'hello.txt'), 'hello from zimage\n');
  await tool('genisoimage', ['-quiet', '-V', 'ZIMAGE', '-o', join(dir, 'a.iso'), join(dir, 'isodir')]);
  const first = fixtures.filter((f) => f.file === 'v3.qcow2');
  for (const f of first) await f.make(dir);
  const rest = fixtures.filter((f) => f.file !== 'v3.qcow2');
  for (let i = 0; i < rest.length; i += 4) await Promise.all(rest.slice(i, i + 4).map((f) => f.make(dir)));
});

after(() => cleanup());

for (const fx of fixtures) {
  test(`qemu-img parity: ${fx.name}`, async () => {
    const path = join(dir, fx.file);
    const r = await inspectFile(path);
    assert.equal(r.format, fx.format);
    assert.deepEqual(failureIds(r), fx.failures, JSON.stringify(r.safety));
    assert.equal(r.safety.ok, fx.failures.length === 0);
    for (const [k, v] of Object.entries(fx.details ?? {})) assert.deepEqual(r.details[k], v, `details.${k}`);

    const st = await stat(path);
    const q = await qemuInfo(path, qemuFormatName(r.format));
    const mine = toQemuImgInfo(r, path, Number(st.blocks) * 512);
    assert.equal(mine['virtual-size'], q['virtual-size'], 'virtual-size');
    if (fx.expectedSize !== undefined) assert.equal(r.virtualSize, fx.expectedSize);
    assert.equal(mine.format, q.format);
    assert.equal(mine['cluster-size'], q['cluster-size'], 'cluster-size');
    assert.equal(mine['backing-filename'], q['backing-filename'], 'backing-filename');
    assert.equal(mine['backing-filename-format'], q['backing-filename-format'], 'backing-filename-format');
    assert.equal(mine.encrypted, q.encrypted, 'encrypted');
    if (!fx.skipActualSize) assert.equal(mine['actual-size'], q['actual-size'], 'actual-size');
    if (mine['format-specific']) {
      const qs = q['format-specific'];
      assert.ok(qs, 'qemu reports format-specific too');
      assert.equal(mine['format-specific'].type, qs.type);
      for (const [k, v] of Object.entries(mine['format-specific'].data)) assert.deepEqual(v, qs.data[k], `format-specific.${k}`);
    }
    // The read target: ≤ 64 KiB except VHDX (metadata) and footer-style streamOptimized VMDKs.
    if (r.format !== 'vhdx') assert.ok(r.bytesRead <= 64 * 1024, `read ${r.bytesRead} bytes`);
    assert.ok(r.bytesRead <= 256 * 1024, `read ${r.bytesRead} bytes`);
  });
}
