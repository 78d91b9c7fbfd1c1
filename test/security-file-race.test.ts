/**
 * file:// imports cannot be raced into reading a file outside the allowed roots: while ~300 imports of
 * <root>/d/disk.raw run against a real `zimage serve`, a helper swaps <root>/d with a symbolic link to a
 * directory outside the roots (renameat2 RENAME_EXCHANGE in a tight loop). No Ready image may carry the
 * secret's bytes; every import either stores the real image or is refused. And the descriptor checks one
 * by one: FIFOs, devices, directories, links out of the root.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImportSourceError, makeImportPolicy, openFileSource } from '../src/sources/index.js';
import { execFileP, ROOT, startProcess, tempDir, type ZClient } from './helpers/zimage.js';
import { md5 } from './helpers/assert.js';

const IMPORTS = 300;
const PARALLEL = 12;

describe('file:// import under a rename race', () => {
  let server: Awaited<ReturnType<typeof startProcess>>;
  let c: ZClient;
  let work: string;
  let root: string;
  let bs: string;
  const image = randomBytes(64 * 1024);
  const secret = randomBytes(64 * 1024);

  before(async () => {
    work = await tempDir('zimage-race-');
    root = join(work, 'root');
    const outside = join(work, 'outside');
    await mkdir(join(root, 'd'), { recursive: true });
    await mkdir(outside);
    await mkdir(join(work, 'storage'));
    await writeFile(join(root, 'd', 'disk.raw'), image);
    // The secret lives outside the roots; <root>/x is a link to its directory, swapped with <root>/d.
    await writeFile(join(outside, 'disk.raw'), secret);
    await symlink(outside, join(root, 'x'));
    server = await startProcess([], { ZIMAGE_IMPORT_FILE_ROOTS: root });
    c = server.client;
    await c.login();
    bs = (await c.addLocalStorage(join(work, 'storage'))).uuid;
  });

  after(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('no Ready image ever holds the bytes of a file outside the roots', { timeout: 600_000 }, async () => {
    // Sanity: without the race the path imports the real image, and the link itself is refused.
    const plain = await c.call('POST', '/images', {
      params: { name: 'plain', url: `file://${join(root, 'd', 'disk.raw')}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.body.inventory.md5Sum, md5(image));
    const viaLink = await c.call('POST', '/images', {
      params: { name: 'link', url: `file://${join(root, 'x', 'disk.raw')}`, format: 'raw', backupStorageUuids: [bs] },
    });
    assert.equal(viaLink.status, 503, viaLink.text);
    assert.equal(viaLink.body.error.code, 'SYS.1007');

    const swapper = spawn('python3', [join(ROOT, 'test/helpers/rename-exchange.py'), join(root, 'd'), join(root, 'x')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    swapper.stdout.on('data', (d: Buffer) => (out += d.toString()));
    swapper.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => swapper.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const onData = () => out.includes('ready') && resolve();
      swapper.stdout.on('data', onData);
      void exited.then((code) => reject(new Error(`rename-exchange.py exited with ${code} before swapping:\n${out}`)));
    });

    const outcomes = { real: 0, secret: 0, refused: 0, other: [] as string[] };
    let next = 0;
    const worker = async () => {
      while (next < IMPORTS) {
        const n = next++;
        const res = await c.call('POST', '/images', {
          params: { name: `race-${n}`, url: `file://${join(root, 'd', 'disk.raw')}`, format: 'raw', backupStorageUuids: [bs] },
        });
        if (res.status === 200) {
          if (res.body.inventory.md5Sum === md5(secret)) outcomes.secret++;
          else if (res.body.inventory.md5Sum === md5(image)) outcomes.real++;
          else outcomes.other.push(`Ready with unknown MD5 ${res.body.inventory.md5Sum}`);
        } else if (res.body?.error?.code === 'SYS.1007' && /outside the directories/.test(res.body.error.details)) {
          outcomes.refused++;
        } else {
          outcomes.other.push(`${res.status} ${res.text}`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: PARALLEL }, worker));
    } finally {
      swapper.stdin.end();
      const code = await exited;
      assert.equal(code, 0, `rename-exchange.py failed:\n${out}`);
    }
    console.log(
      `# ${IMPORTS} imports under the race: ${outcomes.real} real image, ${outcomes.refused} refused, ${outcomes.secret} SECRET, swapper: ${out.trim().split('\n').pop()}`,
    );

    // What is stored, as the API lists it: no Ready image has the secret's bytes.
    const listed = await c.call('GET', '/images?q=status=Ready&limit=1000');
    assert.equal(listed.status, 200, listed.text);
    const leaked = (listed.body.inventories as Array<{ name: string; md5Sum: string }>).filter((i) => i.md5Sum === md5(secret));
    assert.deepEqual(
      leaked.map((i) => i.name),
      [],
      'images holding the secret file',
    );
    assert.equal(outcomes.secret, 0);
    assert.deepEqual(outcomes.other, []);
    assert.equal(outcomes.real + outcomes.refused, IMPORTS);
    // The race really ran: some imports met the swapped-in link (and were refused), some the real directory.
    assert.ok(outcomes.refused > 0, 'no import ever met the swapped path; the race did not happen');
    assert.ok(outcomes.real > 0, 'no import ever met the real directory');
  });
});

describe('file:// opens first, then judges the descriptor', () => {
  test('FIFOs, devices, directories and links out of the root are refused without being read; a link inside is followed', async () => {
    const work = await tempDir('zimage-fd-');
    try {
      const root = join(work, 'root');
      await mkdir(join(root, 'sub'), { recursive: true });
      await writeFile(join(root, 'disk.raw'), 'inside');
      await writeFile(join(work, 'secret.raw'), 'outside');
      await execFileP('mkfifo', [join(root, 'pipe')]);
      await symlink('/dev/zero', join(root, 'zero'));
      await symlink(join(root, 'disk.raw'), join(root, 'alias.raw'));
      await symlink(join(work, 'secret.raw'), join(root, 'escape.raw'));
      await symlink(work, join(root, 'up'));
      const policy = makeImportPolicy({ fileRoots: [root] });
      const refused = async (name: string, re: RegExp) => {
        await assert.rejects(openFileSource(`file://${join(root, name)}`, policy), (e: unknown) => {
          assert.ok(e instanceof ImportSourceError, String(e));
          assert.match(e.message, re);
          return true;
        });
      };
      await refused('pipe', /not a regular file/); // would hang if opened for reading
      await refused('zero', /outside the directories/);
      await refused('sub', /a directory/);
      await refused('escape.raw', /resolves \(through a symbolic link\) to .*secret\.raw, which is outside/);
      await refused('up/secret.raw', /outside the directories/);
      await refused('nope.raw', /does not exist/);
      const ok = await openFileSource(`file://${join(root, 'alias.raw')}`, policy);
      let text = '';
      for await (const chunk of ok.stream) text += String(chunk);
      assert.equal(text, 'inside');
      assert.equal(ok.length, 6);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
