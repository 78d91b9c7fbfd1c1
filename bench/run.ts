/**
 * `npm run bench [-- section …]`: zimage against the reference tools in the same run, medians and ratios.
 * Sections: inspect, hashing, api, flight, memory, sftp, ceph, query (default: all that exist on this machine).
 * `--images N` sizes the query section's library (generated once, cached in ~/.cache/zimage-bench).
 * Work files are cached in $ZIMAGE_BENCH_DIR (default /tmp/zimage-bench).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = process.env.ZIMAGE_BENCH_DIR ?? join(tmpdir(), 'zimage-bench');
const sections: Record<string, () => Promise<string[]>> = {
  inspect: async () => (await import('./inspect.js')).benchInspect(join(dir, 'inspect')),
  hashing: async () => (await import('./hashing.js')).benchHashing(join(dir, 'hashing')),
  api: async () => (await import('./api.js')).benchApi(dir),
  flight: async () => (await import('./load.js')).benchFlight(dir),
  memory: async () => (await import('./load.js')).benchMemory(dir),
  sftp: async () => (await import('./sftp.js')).benchSftp(join(dir, 'sftp')),
  ceph: async () => (await import('./ceph.js')).benchCeph(join(dir, 'ceph')),
  query: async () => (await import('./query.js')).benchQuery(dir, { images: images ? Number(images) : undefined }),
};
// `--images N`: the query section's library size (default 10,000).
const args = process.argv.slice(2);
const at = args.indexOf('--images');
const images = at >= 0 ? args.splice(at, 2)[1] : undefined;
if (images !== undefined && !/^\d+$/.test(images)) {
  console.error('--images wants a number of images');
  process.exit(2);
}
const wanted = args.length ? args : Object.keys(sections);
let failed = false;
for (const name of wanted) {
  const section = sections[name];
  if (!section) {
    console.error(`unknown section ${name}; choose from ${Object.keys(sections).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n== ${name} ==`);
  try {
    for (const line of await section()) console.log(line);
  } catch (err) {
    failed = true;
    console.log(`(section ${name} could not run: ${(err as Error).message.split('\n')[0]})`);
  }
}
process.exit(failed ? 1 : 0);
