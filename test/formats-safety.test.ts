/**
 * Hand-crafted fixtures: every safety check of image-formats.md §3 fails its crafted image and passes the
 * clean one; qemu's size rules pinned on crafted headers (checked against qemu-img where it can open them).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type InspectResult } from '../src/formats/inspect.js';
import {
  DEFAULT_VMDK_DESCRIPTOR,
  failureIds,
  gptDisk,
  inspectBytes,
  isoImage,
  luksHeader,
  mbrDisk,
  qcow2Header,
  qedHeader,
  qemuInfo,
  vdiHeader,
  vhdDynamic,
  vhdFooter,
  vhdxImage,
  vmdkSparse,
  withTempDir,
} from './helpers/formats-fixtures.js';

function assertSafe(r: InspectResult): void {
  assert.deepEqual(r.safety.failures, [], JSON.stringify(r.safety.failures));
  assert.equal(r.safety.ok, true);
}
function assertFails(r: InspectResult, check: string): void {
  assert.equal(r.safety.ok, false);
  assert.ok(failureIds(r).includes(check), `expected ${check}, got ${JSON.stringify(r.safety.failures)}`);
  const f = r.safety.failures.find((x) => x.check === check)!;
  assert.ok(f.message.length > 0);
}

/** Writes `bytes` to a temp file and returns qemu-img's virtual size for it (or the error text). */
async function qemuSize(bytes: Uint8Array, fmt: string, name = 'x.img'): Promise<number | string> {
  return withTempDir(async (dir) => {
    const p = join(dir, name);
    await writeFile(p, bytes);
    try {
      return (await qemuInfo(p, fmt))['virtual-size'];
    } catch (err) {
      return String((err as { stderr?: string }).stderr ?? err);
    }
  });
}

describe('qcow2', () => {
  test('clean header is safe; size rounded down to 512', async () => {
    const r = await inspectBytes(qcow2Header());
    assert.equal(r.format, 'qcow2');
    assertSafe(r);
    assert.equal(r.virtualSize, 1024 * 1024);
    const odd = qcow2Header({ size: 1000n });
    const r2 = await inspectBytes(odd);
    assert.equal(r2.virtualSize, 512);
    assert.equal(await qemuSize(odd, 'qcow2'), 512);
  });
  test('backing file naming /etc/passwd', async () => {
    const r = await inspectBytes(qcow2Header({ backingFile: '/etc/passwd' }));
    assertFails(r, 'qcow2-backing-file');
    assert.equal(r.details.backingFile, '/etc/passwd');
  });
  test('backing file name longer than 1023 bytes', async () => {
    const r = await inspectBytes(qcow2Header({ backingFile: 'a'.repeat(2000), length: 4096 }));
    assertFails(r, 'qcow2-backing-file-size');
    assert.equal((r.details.backingFile as string).length, 1023);
  });
  test('external data file bit (byte 79 = 0x04)', async () => {
    assertFails(await inspectBytes(qcow2Header({ incompatible: 4n })), 'qcow2-data-file');
  });
  test('unknown incompatible bits: byte 72 = 0x01, byte 79 = 0x80, extended L2 (0x10)', async () => {
    for (const bits of [1n << 56n, 0x80n, 0x10n]) {
      assertFails(await inspectBytes(qcow2Header({ incompatible: bits })), 'qcow2-unknown-features');
    }
    // dirty + corrupt (bits 0, 1) are known: allowed.
    assertSafe(await inspectBytes(qcow2Header({ incompatible: 3n })));
  });
  test('versions 1 and 4 are refused', async () => {
    for (const version of [1, 4]) assertFails(await inspectBytes(qcow2Header({ version })), 'qcow2-version');
    assertSafe(await inspectBytes(qcow2Header({ version: 2 })));
  });
  test('cluster_bits 8 and 22 are refused, 9 and 21 pass', async () => {
    for (const clusterBits of [8, 22, 0, 0xffffffff]) {
      assertFails(await inspectBytes(qcow2Header({ clusterBits })), 'qcow2-cluster-bits');
    }
    for (const clusterBits of [9, 21]) assertSafe(await inspectBytes(qcow2Header({ clusterBits })));
  });
  test('header_length outside [104, cluster size]', async () => {
    assertFails(await inspectBytes(qcow2Header({ headerLength: 100 })), 'qcow2-header-length');
    assertFails(await inspectBytes(qcow2Header({ headerLength: 70000 })), 'qcow2-header-length');
  });
  test('crypt_method: 1 (legacy AES) and 3 refused, 2 (LUKS) reported encrypted', async () => {
    assertFails(await inspectBytes(qcow2Header({ cryptMethod: 1 })), 'qcow2-encryption');
    assertFails(await inspectBytes(qcow2Header({ cryptMethod: 3 })), 'qcow2-encryption');
    const r = await inspectBytes(qcow2Header({ cryptMethod: 2 }));
    assertSafe(r);
    assert.equal(r.details.encrypted, true);
  });
  test('compression type must agree with incompatible bit 3', async () => {
    const z = await inspectBytes(qcow2Header({ compressionType: 1 }));
    assertSafe(z);
    assert.equal(z.details.compressionType, 'zstd');
    assertFails(await inspectBytes(qcow2Header({ compressionType: 1, incompatible: 0n })), 'qcow2-compression-type');
    assertFails(await inspectBytes(qcow2Header({ compressionType: 0, incompatible: 8n })), 'qcow2-compression-type');
  });
  test('L1 table too small for the size', async () => {
    assertFails(await inspectBytes(qcow2Header({ size: 1n << 40n, l1Size: 1 })), 'qcow2-l1-table');
  });
  test('size near 2^64: exact in details, refused by the virtual-size limit', async () => {
    const r = await inspectBytes(qcow2Header({ size: 0xffff_ffff_ffff_ffffn }));
    assertFails(r, 'virtual-size-limit');
    assert.equal(r.details.virtualSizeExact, (0xffff_ffff_ffff_ffffn & ~511n).toString());
  });
});

describe('vmdk', () => {
  const desc = (createType: string, extent = 'RW 2048 SPARSE "test.vmdk"') =>
    DEFAULT_VMDK_DESCRIPTOR.replace('createType="monolithicSparse"', createType).replace('RW 2048 SPARSE "test.vmdk"', extent);

  test('clean monolithicSparse is safe; size = capacity × 512', async () => {
    const r = await inspectBytes(vmdkSparse({ capacity: 4096n }));
    assert.equal(r.format, 'vmdk');
    assertSafe(r);
    assert.equal(r.virtualSize, 4096 * 512);
    assert.equal(r.details.createType, 'monolithicSparse');
  });
  test('createType allow-list: flat, twoGb, vmfs, missing, 100 characters', async () => {
    for (const ct of [
      'createType="monolithicFlat"',
      'createType="twoGbMaxExtentSparse"',
      'createType="vmfs"',
      '',
      `createType="${'x'.repeat(100)}"`,
      `createType="monolithicSparse${'s'.repeat(60)}"`,
    ]) {
      assertFails(await inspectBytes(vmdkSparse({ descriptor: desc(ct) })), 'vmdk-create-type');
    }
    assertSafe(await inspectBytes(vmdkSparse({ descriptor: desc('createType="STREAMOPTIMIZED"') })));
  });
  test('extent naming /etc/passwd', async () => {
    const r = await inspectBytes(vmdkSparse({ descriptor: desc('createType="monolithicSparse"', 'RW 2048 FLAT "/etc/passwd" 0') }));
    assertFails(r, 'vmdk-extent-path');
  });
  test('no extents; bad access word', async () => {
    assertFails(await inspectBytes(vmdkSparse({ descriptor: desc('createType="monolithicSparse"', '') })), 'vmdk-no-extents');
    assertFails(
      await inspectBytes(vmdkSparse({ descriptor: desc('createType="monolithicSparse"', 'WRONLY 2048 SPARSE "test.vmdk"') })),
      'vmdk-descriptor-grammar',
    );
    assertFails(
      await inspectBytes(vmdkSparse({ descriptor: desc('createType="monolithicSparse"') + 'some junk line\n' })),
      'vmdk-descriptor-grammar',
    );
  });
  test('parentFileNameHint is refused', async () => {
    assertFails(
      await inspectBytes(vmdkSparse({ descriptor: desc('createType="monolithicSparse"') + 'parentFileNameHint="base.vmdk"\n' })),
      'vmdk-parent',
    );
  });
  test('descriptor at a sector other than 1', async () => {
    assertFails(await inspectBytes(vmdkSparse({ descOffset: 2n })), 'vmdk-descriptor-location');
  });
  test('huge desc_size: refused and never read beyond 1 MiB', async () => {
    const r = await inspectBytes(vmdkSparse({ descSize: 0xffff_ffff_ffffn }));
    assertFails(r, 'vmdk-descriptor-size');
    assert.ok(r.bytesRead < 64 * 1024, `read ${r.bytesRead}`);
  });
  test('version 4 is refused', async () => {
    assertFails(await inspectBytes(vmdkSparse({ version: 4 })), 'vmdk-version');
  });
  test('grain size 0 is refused', async () => {
    assertFails(await inspectBytes(vmdkSparse({ grain: 0n })), 'vmdk-header-fields');
  });
  test('streamOptimized footer (gd_offset all ones): size from the footer copy, as qemu', async () => {
    const img = vmdkSparse({ gdOffset: 0xffff_ffff_ffff_ffffn, capacity: 2048n, footer: { capacity: 8192n } });
    const r = await inspectBytes(img);
    assertSafe(r);
    assert.equal(r.details.footerValid, true);
    assert.equal(r.virtualSize, 8192 * 512);
    assert.equal(await qemuSize(img, 'vmdk', 'x.vmdk'), 8192 * 512);
  });
  test('broken footers are refused', async () => {
    const gd = 0xffff_ffff_ffff_ffffn;
    const variants = [
      { markerType: 2 },
      { markerPad: true },
      { gdOffset: gd },
      { descOffset: 2n },
      { eosType: 1 },
      { eosValue: 5n },
      { magic: 'XXXX' },
    ];
    for (const footer of variants) {
      const r = await inspectBytes(vmdkSparse({ gdOffset: gd, footer }));
      assertFails(r, 'vmdk-footer');
      assert.equal(r.virtualSize, 0, Object.keys(footer).join());
    }
    assertFails(await inspectBytes(vmdkSparse({ gdOffset: gd })), 'vmdk-footer');
  });
  test('text descriptor files', async () => {
    const text = (ct: string, ext: string) =>
      Buffer.from(`# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="${ct}"\n\n${ext}\n`);
    const flat = await inspectBytes(text('monolithicFlat', 'RW 2048 FLAT "/etc/passwd" 0'));
    assert.equal(flat.format, 'vmdk');
    assert.equal(flat.virtualSize, 2048 * 512);
    assertFails(flat, 'vmdk-create-type');
    assertFails(flat, 'vmdk-extent-path');
    const bin = text('monolithicSparse', 'RW 1 SPARSE "x"');
    const r = await inspectBytes(Buffer.concat([bin, Buffer.alloc(9000, 0x41), Buffer.from([0x80])]));
    assertFails(r, 'vmdk-descriptor-text');
  });
});

describe('vhd', () => {
  const TEN_G = 10n * 1024n ** 3n;
  const chs: [number, number, number] = [20806, 16, 63];
  test('creators: CHS rule of qemu 7.2 (qemu, unknown, Azure wa\\0\\0 use CHS; win uses current_size)', async () => {
    const cases: [string, number][] = [
      ['qemu', 10737893376],
      ['abcd', 10737893376],
      ['wa\0\0', 10737893376],
      ['vpc ', 10737893376],
      ['win ', 10737418240],
      ['qem2', 10737418240],
      ['d2v ', 10737418240],
      ['CTXS', 10737418240],
      ['tap\0', 10737418240],
    ];
    for (const [creator, size] of cases) {
      const img = vhdDynamic({ creator, currentSize: TEN_G, chs });
      const r = await inspectBytes(img);
      assert.equal(r.format, 'vhd');
      assertSafe(r);
      assert.equal(r.virtualSize, size, JSON.stringify(creator));
      if (creator === 'win ' || creator === 'wa\0\0' || creator === 'abcd') assert.equal(await qemuSize(img, 'vpc'), size);
    }
  });
  test('maximum CHS geometry uses current_size', async () => {
    const img = vhdDynamic({ creator: 'qemu', currentSize: 200n * 1024n ** 3n, chs: [65535, 16, 255] });
    const r = await inspectBytes(img);
    assertSafe(r);
    assert.equal(r.virtualSize, 200 * 1024 ** 3);
    assert.equal(await qemuSize(img, 'vpc'), 200 * 1024 ** 3);
  });
  test('differencing disk is refused', async () => {
    const r = await inspectBytes(vhdDynamic({ diskType: 4, parentName: 'C:\\base.vhd' }));
    assertFails(r, 'vhd-differencing');
    assert.equal(r.details.parentName, 'C:\\base.vhd');
  });
  test('bad checksum; disk types 0, 1, 5', async () => {
    const bad = vhdDynamic({ badChecksum: true });
    assertFails(await inspectBytes(bad), 'vhd-checksum');
    assert.match(String(await qemuSize(bad, 'vpc')), /checksum/i);
    for (const diskType of [0, 1, 5]) assertFails(await inspectBytes(vhdDynamic({ diskType })), 'vhd-disk-type');
  });
  test('BAT too small (qemu: Page table too small)', async () => {
    const img = vhdDynamic({ maxTableEntries: 1 });
    assertFails(await inspectBytes(img), 'vhd-bat');
    assert.match(String(await qemuSize(img, 'vpc')), /too small/i);
    assertFails(await inspectBytes(vhdDynamic({ blockSize: 1000 })), 'vhd-bat');
  });
  test('more than 2040 GiB is refused', async () => {
    assertFails(
      await inspectBytes(vhdDynamic({ creator: 'win ', currentSize: 3n * 1024n ** 4n, maxTableEntries: 2 ** 21 })),
      'vhd-too-large',
    );
  });
  test('fixed disk: footer at the end, length must be current_size + 512', async () => {
    const size = 1024n * 1024n;
    const footer = vhdFooter({ diskType: 2, creator: 'win ', currentSize: size });
    const img = Buffer.concat([Buffer.alloc(Number(size)), footer]);
    const r = await inspectBytes(img);
    assertSafe(r);
    assert.equal(r.details.diskType, 'fixed');
    assert.equal(r.virtualSize, Number(size));
    assert.equal(await qemuSize(img, 'vpc'), Number(size));
    assertFails(await inspectBytes(Buffer.concat([Buffer.alloc(4096), footer])), 'vhd-fixed-length');
  });
  test('fixed disk holding an MBR disk is not a format clash', async () => {
    const disk = mbrDisk([{ type: 0x83, lba: 2048, sectors: 100 }], 1024 * 1024);
    const r = await inspectBytes(Buffer.concat([disk, vhdFooter({ diskType: 2, creator: 'win ', currentSize: 1024n * 1024n })]));
    assert.equal(r.format, 'vhd');
    assertSafe(r);
    assert.deepEqual(r.details.matched, ['vhd', 'mbr']);
  });
  test('a dynamic footer found only at the end is refused', async () => {
    const img = Buffer.concat([Buffer.alloc(4096), vhdFooter({ diskType: 3 })]);
    assertFails(await inspectBytes(img), 'vhd-footer-copy');
  });
});

describe('vhdx', () => {
  test('clean crafted VHDX is safe and qemu agrees on the size', async () => {
    const img = vhdxImage({ virtualDiskSize: 3n * 1024n ** 3n });
    const r = await inspectBytes(img);
    assert.equal(r.format, 'vhdx');
    assertSafe(r);
    assert.equal(r.virtualSize, 3 * 1024 ** 3);
    assert.equal(await qemuSize(img, 'vhdx'), 3 * 1024 ** 3);
  });
  test('HasParent flag; parent locator item', async () => {
    assertFails(await inspectBytes(vhdxImage({ hasParent: true })), 'vhdx-parent');
    assertFails(await inspectBytes(vhdxImage({ parentLocator: true })), 'vhdx-parent');
  });
  test('2048 region entries', async () => {
    const r = await inspectBytes(vhdxImage({ regionCount: 2048 }));
    assertFails(r, 'vhdx-region-table');
    assert.equal(r.virtualSize, 0);
  });
  test('bad CRCs', async () => {
    assertFails(await inspectBytes(vhdxImage({ badRegionCrc: true })), 'vhdx-region-table');
    assertFails(await inspectBytes(vhdxImage({ badHeaderCrc: true })), 'vhdx-header');
  });
  test('4096-byte logical sectors: qemu 7.2 cannot open them; refused', async () => {
    const img = vhdxImage({ logicalSectorSize: 4096, virtualDiskSize: 1024n ** 3n });
    const r = await inspectBytes(img);
    assertFails(r, 'vhdx-logical-sector-size');
    assert.equal(r.virtualSize, 0);
    assert.match(String(await qemuSize(img, 'vhdx')), /not supported/i);
  });
  test('block size outside 1..256 MiB; missing virtual disk size', async () => {
    assertFails(await inspectBytes(vhdxImage({ blockSize: 512 * 1024 })), 'vhdx-block-size');
    const r = await inspectBytes(vhdxImage({ omitVirtualSize: true }));
    assertFails(r, 'vhdx-metadata');
    assert.equal(r.virtualSize, 0);
  });
});

describe('vdi', () => {
  test('clean; odd disk size rounded up as qemu does', async () => {
    assertSafe(await inspectBytes(vdiHeader()));
    const img = vdiHeader({ diskSize: 1048476n });
    const r = await inspectBytes(img);
    assertSafe(r);
    assert.equal(r.virtualSize, 1048576);
  });
  test('version, sector size, block size, bitmap room, parent', async () => {
    assertFails(await inspectBytes(vdiHeader({ version: 0x00010000 })), 'vdi-version');
    assertFails(await inspectBytes(vdiHeader({ sectorSize: 4096 })), 'vdi-sector-size');
    assertFails(await inspectBytes(vdiHeader({ blockSize: 2 * 1024 * 1024 })), 'vdi-block-size');
    assertFails(await inspectBytes(vdiHeader({ diskSize: 10n * 1024n ** 3n, blocksInImage: 1 })), 'vdi-blocks');
    assertFails(await inspectBytes(vdiHeader({ parentUuid: true })), 'vdi-parent');
  });
});

describe('qed, luks', () => {
  test('qed is always refused', async () => {
    const r = await inspectBytes(qedHeader());
    assert.equal(r.format, 'qed');
    assertFails(r, 'qed-unsupported');
  });
  test('luks1 passes; size = length − payload; luks2 refused; payload beyond the file refused', async () => {
    const img = luksHeader(1, 8);
    const r = await inspectBytes(img);
    assert.equal(r.format, 'luks');
    assertSafe(r);
    assert.equal(r.virtualSize, img.length - 8 * 512);
    assertFails(await inspectBytes(luksHeader(2)), 'luks-version');
    const far = luksHeader(1, 8);
    far.writeUInt32BE(1_000_000, 104);
    assertFails(await inspectBytes(far), 'luks-payload');
  });
});

describe('mbr / gpt', () => {
  test('clean MBR and GPT are raw with a partition table', async () => {
    const m = await inspectBytes(mbrDisk([{ type: 0x83, boot: 0x80, sectors: 100 }]));
    assert.equal(m.format, 'raw');
    assert.equal(m.details.partitionTable, 'mbr');
    assertSafe(m);
    const g = await inspectBytes(gptDisk());
    assert.equal(g.format, 'raw');
    assert.equal(g.details.partitionTable, 'gpt');
    assertSafe(g);
  });
  test('protective entry with a second partition; in slot 1; starting at LBA 2; wrong CHS', async () => {
    const prot = { type: 0xee, chs: [0, 2, 0] as [number, number, number], lba: 1, sectors: 2047 };
    assertFails(await inspectBytes(mbrDisk([prot, { type: 0x83 }])), 'mbr-protective');
    assertFails(await inspectBytes(mbrDisk([undefined, prot])), 'mbr-protective');
    assertFails(await inspectBytes(mbrDisk([{ ...prot, lba: 2 }])), 'mbr-protective');
    assertFails(await inspectBytes(mbrDisk([{ ...prot, chs: [0, 1, 0] }])), 'mbr-protective');
  });
  test('boot flag 0x01; no partition at all; bad GPT header CRC', async () => {
    assertFails(await inspectBytes(mbrDisk([{ type: 0x83, boot: 0x01 }])), 'mbr-boot-flag');
    assertFails(await inspectBytes(mbrDisk([])), 'mbr-no-partitions');
    assertFails(await inspectBytes(gptDisk({ badCrc: true })), 'gpt-header');
  });
  test('a FAT boot sector is not an MBR', async () => {
    const fat = mbrDisk([]);
    fat[0x10] = 2;
    fat[0x15] = 0xf8;
    const r = await inspectBytes(fat);
    assert.equal(r.format, 'raw');
    assert.deepEqual(r.details.matched, []);
    assertSafe(r);
  });
});

describe('iso and polyglots', () => {
  test('clean ISO; hybrid ISO + MBR is allowed', async () => {
    const r = await inspectBytes(isoImage(20));
    assert.equal(r.format, 'iso');
    assertSafe(r);
    assert.equal(r.details.volumeSize, 20 * 2048);
    assert.equal(r.virtualSize, 20 * 2048);
    const hybrid = await inspectBytes(isoImage(20, mbrDisk([{ type: 0x17, boot: 0x80, lba: 0, sectors: 80 }], 512)));
    assert.equal(hybrid.format, 'iso');
    assertSafe(hybrid);
  });
  test('qcow2 header inside the ISO system area is refused', async () => {
    const r = await inspectBytes(isoImage(20, qcow2Header({ backingFile: undefined })));
    assert.equal(r.format, 'qcow2');
    assertFails(r, 'multiple-formats');
    assert.deepEqual(r.details.matched, ['qcow2', 'iso']);
  });
  test('vdi header in front of a VHD footer is refused', async () => {
    const img = Buffer.concat([
      vdiHeader(),
      Buffer.alloc(1024 * 1024 - 1024),
      vhdFooter({ diskType: 2, creator: 'win ', currentSize: 1024n * 1024n }),
    ]);
    assertFails(await inspectBytes(img), 'multiple-formats');
  });
});

describe('truncated files of every format', () => {
  // [format, clean image, end of the magic, end of the fixed header]
  const clean: [string, Buffer, number, number][] = [
    ['qcow2', qcow2Header(), 4, 104],
    ['vmdk', vmdkSparse(), 4, 79],
    ['vhd', vhdDynamic(), 8, 512],
    ['vhdx', vhdxImage(), 8, 256 * 1024],
    ['vdi', vdiHeader(), 0x44, 0x1c8],
    ['qed', qedHeader(), 4, 64],
    ['luks', luksHeader(), 6, 592],
  ];
  for (const [fmt, img, magicEnd, headerEnd] of clean) {
    test(`${fmt}: cut inside its header → still detected, refused, no exception`, async () => {
      if (fmt === 'qed') assertFails(await inspectBytes(img), 'qed-unsupported');
      else assertSafe(await inspectBytes(img));
      const cuts = [magicEnd, magicEnd + 1, Math.floor((magicEnd + headerEnd) / 2), headerEnd - 1];
      for (const n of cuts) {
        const r = await inspectBytes(img.subarray(0, n));
        assert.equal(r.format, fmt, `${fmt} cut at ${n}`);
        assert.equal(r.safety.ok, false, `${fmt} cut at ${n}`);
        if (['qcow2', 'vmdk', 'vhd', 'vdi', 'qed'].includes(fmt)) assertFails(r, `${fmt}-truncated`);
        if (failureIds(r).includes(`${fmt}-truncated`)) assert.equal(r.virtualSize, 0);
      }
      // Cut before the magic is complete: nothing to detect → raw.
      const r = await inspectBytes(img.subarray(0, magicEnd - 1));
      assert.equal(r.format, 'raw');
    });
  }
  test('vmdk footer and vhdx tables cut short', async () => {
    const so = vmdkSparse({ gdOffset: 0xffff_ffff_ffff_ffffn, footer: {} });
    assertSafe(await inspectBytes(so));
    assertFails(await inspectBytes(so.subarray(0, so.length - 100)), 'vmdk-footer');
    const x = vhdxImage();
    assertFails(await inspectBytes(x.subarray(0, 200 * 1024)), 'vhdx-region-table');
    assertFails(await inspectBytes(x.subarray(0, 2 * 1024 * 1024 + 100)), 'vhdx-metadata');
  });
});

describe('every header field at 0 and at max', () => {
  // [format, clean image, field list (offset, width)] — magic bytes excluded.
  const fields: [string, Buffer, [number, number][]][] = [
    [
      'qcow2',
      qcow2Header(),
      [
        [4, 4],
        [8, 8],
        [16, 4],
        [20, 4],
        [24, 8],
        [32, 4],
        [36, 4],
        [40, 8],
        [48, 8],
        [56, 4],
        [60, 4],
        [64, 8],
        [72, 8],
        [80, 8],
        [88, 8],
        [96, 4],
        [100, 4],
        [104, 1],
      ],
    ],
    [
      'vmdk',
      vmdkSparse(),
      [
        [4, 4],
        [8, 4],
        [12, 8],
        [20, 8],
        [28, 8],
        [36, 8],
        [44, 4],
        [48, 8],
        [56, 8],
        [64, 8],
        [72, 1],
        [77, 2],
      ],
    ],
    [
      'vhd',
      vhdDynamic(),
      [
        [8, 4],
        [12, 4],
        [16, 8],
        [28, 4],
        [40, 8],
        [48, 8],
        [56, 2],
        [58, 1],
        [59, 1],
        [60, 4],
        [64, 4],
        [512 + 16, 8],
        [512 + 28, 4],
        [512 + 32, 4],
      ],
    ],
    [
      'vdi',
      vdiHeader(),
      [
        [0x44, 4],
        [0x48, 4],
        [0x4c, 4],
        [0x154, 4],
        [0x158, 4],
        [0x168, 4],
        [0x170, 8],
        [0x178, 4],
        [0x180, 4],
        [0x1b8, 16],
      ],
    ],
    [
      'luks',
      luksHeader(),
      [
        [6, 2],
        [104, 4],
        [108, 4],
      ],
    ],
    [
      'qed',
      qedHeader(),
      [
        [4, 4],
        [16, 8],
        [48, 8],
      ],
    ],
    [
      'vhdx',
      vhdxImage(),
      [
        [196608 + 8, 4],
        [196608 + 32, 8],
        [196608 + 40, 4],
        [196608 + 64, 8],
        [196608 + 72, 4],
        [2097152 + 10, 2],
        [2097152 + 48, 4],
        [2097152 + 52, 4],
        [2097152 + 0x10000, 4],
        [2097152 + 0x10008, 8],
        [2097152 + 0x10020, 4],
      ],
    ],
  ];
  for (const [fmt, img, list] of fields) {
    test(`${fmt}: ${list.length} fields × {0, max}`, async () => {
      for (const [off, width] of list) {
        for (const fill of [0x00, 0xff]) {
          const m = Buffer.from(img);
          m.fill(fill, off, off + width);
          const r = await inspectBytes(m);
          assert.equal(r.format, fmt, `${fmt}@${off}=${fill}`);
          assert.ok(Number.isFinite(r.virtualSize) && r.virtualSize >= 0);
          assert.equal(r.safety.ok, r.safety.failures.length === 0);
          assert.ok(r.bytesRead <= 4 * 1024 * 1024);
        }
      }
      // A couple of pinned outcomes: size fields at max are refused by the limit.
      if (fmt === 'qcow2') {
        const m = Buffer.from(img);
        m.fill(0xff, 24, 32);
        assertFails(await inspectBytes(m), 'virtual-size-limit');
      }
    });
  }
});
