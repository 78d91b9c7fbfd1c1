/**
 * Property-based robustness: mutated headers of every format (byte flips, fields at extremes, truncation)
 * must make inspect() resolve or reject with InspectError only, within the read budget, promptly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BufferByteSource, type ByteSource } from '../src/formats/byte-source.js';
import { crc32c } from '../src/formats/crc.js';
import { inspect, InspectError, type InspectResult } from '../src/formats/inspect.js';
import {
  CountingSource,
  DEFAULT_VMDK_DESCRIPTOR,
  gptDisk,
  isoImage,
  luksHeader,
  mbrDisk,
  pseudoRandom,
  qcow2Header,
  qedHeader,
  vdiHeader,
  vhdDynamic,
  vhdFooter,
  vhdxImage,
  vmdkSparse,
} from './helpers/formats-fixtures.js';

const KIB = 1024;
const MIB = 1024 * 1024;

interface Seed {
  name: string;
  bytes: Buffer;
  /** Regions worth mutating: [start, end). */
  hot: [number, number][];
  fix?: (b: Buffer) => void;
}

/** Recomputes the VHDX header and region-table CRCs so mutations reach the metadata parser. */
function fixVhdxCrcs(b: Buffer): void {
  for (const off of [64 * KIB, 128 * KIB]) if (b.length >= off + 4096) b.writeUInt32LE(crc32c(b.subarray(off, off + 4096), 4, 4), off + 4);
  const rt = 192 * KIB;
  if (b.length >= rt + 65536) b.writeUInt32LE(crc32c(b.subarray(rt, rt + 65536), 4, 4), rt + 4);
}

const head = (n: number): [number, number][] => [[0, n]];
const withTail = (b: Buffer, n: number): [number, number][] => [
  [0, n],
  [Math.max(0, b.length - 1536), b.length],
];

const so = vmdkSparse({ gdOffset: 0xffff_ffff_ffff_ffffn, footer: {} });
const fixedVhd = Buffer.concat([Buffer.alloc(64 * KIB), vhdFooter({ diskType: 2, creator: 'win ', currentSize: 64n * 1024n })]);
const vhdxSeed = vhdxImage();
const seeds: Seed[] = [
  { name: 'qcow2', bytes: qcow2Header({ backingFile: 'base.qcow2', backingFileOffset: 600n }), hot: head(700) },
  { name: 'qcow2-v2', bytes: qcow2Header({ version: 2 }), hot: head(128) },
  { name: 'vmdk', bytes: vmdkSparse(), hot: head(1200) },
  { name: 'vmdk-footer', bytes: so, hot: withTail(so, 600) },
  { name: 'vmdk-text', bytes: Buffer.from(DEFAULT_VMDK_DESCRIPTOR), hot: head(400) },
  { name: 'vhd-dynamic', bytes: vhdDynamic(), hot: head(1536) },
  { name: 'vhd-fixed', bytes: fixedVhd, hot: withTail(fixedVhd, 0) },
  {
    name: 'vhdx',
    bytes: vhdxSeed,
    hot: [
      [0, 512],
      [64 * KIB, 64 * KIB + 96],
      [192 * KIB, 192 * KIB + 96],
      [2 * MIB, 2 * MIB + 256],
      [2 * MIB + 64 * KIB, 2 * MIB + 64 * KIB + 48],
    ],
    fix: fixVhdxCrcs,
  },
  { name: 'vdi', bytes: vdiHeader(), hot: head(512) },
  { name: 'qed', bytes: qedHeader(), hot: head(64) },
  { name: 'luks', bytes: luksHeader(), hot: head(600) },
  { name: 'mbr', bytes: mbrDisk([{ type: 0x83, sectors: 100 }], 64 * KIB), hot: head(512) },
  { name: 'gpt', bytes: gptDisk(), hot: head(1024) },
  {
    name: 'iso',
    bytes: isoImage(20),
    hot: [
      [0, 512],
      [0x8000, 0x8100],
    ],
  },
  { name: 'garbage', bytes: pseudoRandom(40 * KIB, 99), hot: head(40 * KIB) },
];

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'field'; at: number; width: 1 | 2 | 4 | 8; fill: number }
  | { kind: 'truncate'; fraction: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('field' as const),
    at: fc.nat(),
    width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
    fill: fc.constantFrom(0x00, 0xff, 0x7f, 0x80),
  }),
  fc.record({ kind: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
);

function apply(seed: Seed, muts: Mutation[]): Buffer {
  let b = Buffer.from(seed.bytes);
  for (const m of muts) {
    if (m.kind === 'truncate') {
      b = b.subarray(0, Math.floor(b.length * m.fraction));
      continue;
    }
    // Land the offset in one of the seed's hot regions.
    const total = seed.hot.reduce((n, [s, e]) => n + (e - s), 0);
    let k = m.at % Math.max(1, total);
    let at = 0;
    for (const [s, e] of seed.hot) {
      if (k < e - s) {
        at = s + k;
        break;
      }
      k -= e - s;
    }
    if (at >= b.length) continue;
    if (m.kind === 'flip') b[at] = m.value;
    else b.fill(m.fill, at, Math.min(b.length, at + m.width));
  }
  seed.fix?.(b);
  return b;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`inspect did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** The property: settles promptly, only with InspectError, within budget; the report is self-consistent. */
async function checkOne(source: ByteSource, budget: number): Promise<void> {
  const counting = new CountingSource(source);
  let result: InspectResult | undefined;
  try {
    result = await withTimeout(inspect(counting, { budgetBytes: budget }), 2000);
  } catch (err) {
    if (!(err instanceof InspectError)) throw err;
  }
  assert.ok(counting.total <= budget, `read ${counting.total} > budget ${budget}`);
  if (result) {
    assert.equal(result.bytesRead, counting.total);
    assert.ok(Number.isFinite(result.virtualSize) && result.virtualSize >= 0);
    assert.equal(result.safety.ok, result.safety.failures.length === 0);
    for (const f of result.safety.failures) assert.ok(typeof f.check === 'string' && f.check.length > 0);
    assert.doesNotThrow(() => JSON.stringify(result.details));
  }
}

test('mutated headers of every format: InspectError only, within budget, promptly', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
      fc.constantFrom(16 * KIB, 64 * KIB, 4 * MIB),
      async (i, muts, budget) => {
        const seed = seeds[i]!;
        await checkOne(new BufferByteSource(apply(seed, muts)), budget);
      },
    ),
    { numRuns: 3000, seed: 20240917 },
  );
});

test('every seed, every prefix length on a coarse grid: never throws', async () => {
  for (const seed of seeds) {
    const step = Math.max(1, Math.floor(seed.bytes.length / 97));
    for (let n = 0; n <= seed.bytes.length; n += step) await checkOne(new BufferByteSource(seed.bytes.subarray(0, n)), 4 * MIB);
  }
});

test('misbehaving sources: lying size, failing reads, oversize reads → InspectError', async () => {
  const qcow = qcow2Header();
  const bad: ByteSource[] = [
    { size: () => Promise.resolve(10 * MIB), read: (o, l) => Promise.resolve(qcow.subarray(o, o + l)) }, // claims more than it has
    { size: () => Promise.resolve(Number.NaN), read: () => Promise.resolve(new Uint8Array(0)) },
    { size: () => Promise.resolve(-1), read: () => Promise.resolve(new Uint8Array(0)) },
    { size: () => Promise.resolve(2 ** 60), read: () => Promise.resolve(new Uint8Array(0)) },
    {
      size: () => Promise.resolve(4096),
      read: () => Promise.reject(new Error('EIO')),
    },
    {
      size: () => Promise.reject(new Error('ENOENT')),
      read: () => Promise.resolve(new Uint8Array(0)),
    },
    { size: () => Promise.resolve(4096), read: (_o, l) => Promise.resolve(new Uint8Array(l + 1)) },
  ];
  for (const src of bad) {
    await assert.rejects(inspect(src), (e: unknown) => e instanceof InspectError);
  }
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), fc.nat({ max: 100_000 }), async (bytes, claimed) => {
      const src: ByteSource = {
        size: () => Promise.resolve(claimed),
        read: (o, l) => Promise.resolve(bytes.subarray(o, Math.min(bytes.length, o + l))),
      };
      await checkOne(src, 4 * MIB);
    }),
    { numRuns: 200, seed: 7 },
  );
});
