/**
 * The SFTP driver against a real OpenSSH sshd on 127.0.0.1 (no mocks): host key, logins, directory
 * checks, import/commit/abort, SFTP reads, remote stat and hashing, cancel, faults (disk full, directory
 * gone, tool missing, sshd gone mid-hash, host key changed) and quoting attacks.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DIGEST_ALGORITHMS, opensslName } from '../src/hashing/algorithms.js';
import { StorageError } from '../src/lib/errors.js';
import { SftpDriver } from '../src/storage/sftp/driver.js';
import { shellCommand, shellQuote } from '../src/storage/sftp/quote.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, startSshd, testUserIds, userDir, type TestSshd } from './helpers/sshd.js';
import { opensslDigest, qemuInfo, tempDir, waitFor } from './helpers/zimage.js';
import { rejectsStorage } from './helpers/storage-assert.js';

const run = promisify(execFile);
const MiB = 1 << 20;

let sshd: TestSshd;
let work: string;
let root: string;
const drivers: SftpDriver[] = [];

interface MadeDriver {
  driver: SftpDriver;
  config: Record<string, unknown>;
}

function makeDriver(url: string, config: Record<string, unknown> = {}): MadeDriver {
  const cfg: Record<string, unknown> = {
    hostname: '127.0.0.1',
    sshPort: sshd.port,
    username: PASSWORD_USER,
    privateKey: sshd.clientKey,
    ...config,
  };
  const driver = new SftpDriver({
    uuid: 'bs',
    url,
    config: cfg,
    saveConfig: (patch) => {
      Object.assign(cfg, patch);
      return Promise.resolve();
    },
  });
  drivers.push(driver);
  return { driver, config: cfg };
}

async function store(driver: SftpDriver, uuid: string, bytes: Buffer): Promise<string> {
  const target = await driver.createImport(uuid);
  await pipeline(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), target.stream);
  await target.commit();
  return target.installPath;
}

/** Pids of the processes that have `file` open (the remote side of a hash runs on this machine). */
async function holdersOf(file: string): Promise<number[]> {
  const real = await fsp.realpath(file);
  const out: number[] = [];
  for (const pid of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await fsp.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await fsp.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (target === real) {
        out.push(Number(pid));
        break;
      }
    }
  }
  return out;
}

before(async () => {
  sshd = await startSshd();
  work = await tempDir('zimage-sftp-');
  await fsp.chmod(work, 0o755);
  root = await userDir(path.join(work, 'bs'));
});

after(async () => {
  await Promise.allSettled(drivers.map((d) => d.close()));
  await sshd?.close();
  await fsp.rm(work, { recursive: true, force: true });
});

describe('quoting', () => {
  const nasty = [
    '',
    'plain',
    'with space',
    "it's",
    `'`,
    `''`,
    `"double"`,
    '$(touch /tmp/zimage-pwned)',
    '`touch /tmp/zimage-pwned`',
    'a; rm -rf /tmp/zimage-nothing',
    'a && b || c | d & e',
    'line1\nline2\n',
    '\n',
    '-n',
    '--help',
    '-rf /',
    '*',
    '~root',
    '${HOME}',
    '\\',
    '\t tab',
    'ünïcödé ✓',
    `'$(x)'"\`y\`";\n-z`,
  ];

  test('shellQuote: every string comes back unchanged through a local sh', async () => {
    for (const s of nasty) {
      const { stdout } = await run('sh', ['-c', shellCommand(['printf', '%s', s])]);
      assert.equal(stdout, s, `round trip of ${JSON.stringify(s)}`);
    }
    assert.equal(shellQuote("a'b"), `'a'\\''b'`);
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });

  test('arguments reach the remote script unchanged, through sshd and the login shell', async () => {
    const { driver } = makeDriver(root);
    for (const s of nasty) {
      const r = await driver.conn.run(`printf '%s' "$1"; printf '|%s' "$#"`, [s]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${s}|1`, `remote round trip of ${JSON.stringify(s)}`);
    }
    await assert.rejects(fsp.stat('/tmp/zimage-pwned'), { code: 'ENOENT' });
  });
});

describe('connect and login', () => {
  test('key login: capacity from df, host key recorded on first connect', async () => {
    const { driver, config } = makeDriver(root);
    assert.equal(config.hostKeyFingerprint, undefined);
    const cap = await driver.connect();
    const fs = await fsp.statfs(root);
    assert.equal(cap.totalCapacity, fs.blocks * fs.bsize);
    assert.ok(Math.abs(cap.availableCapacity - fs.bavail * fs.bsize) < 64 * MiB);
    assert.equal(config.hostKeyFingerprint, sshd.hostFingerprint, 'fingerprint saved through saveConfig');
    // A second connect reuses the pooled connection.
    await driver.connect();
    assert.equal(driver.stats().connections, 1);
  });

  test('password login (keyboard-interactive or password method)', async () => {
    const { driver } = makeDriver(root, { privateKey: undefined, password: PASSWORD_USER_PASSWORD });
    const cap = await driver.connect();
    assert.ok(cap.totalCapacity > 0);
  });

  test('wrong password: a permission error that names the user and not the password', async () => {
    const { driver } = makeDriver(root, { privateKey: undefined, password: 'not-the-password-4711' });
    const err = await rejectsStorage(driver.connect(), 'permission', /refused/);
    assert.match(err.message, new RegExp(PASSWORD_USER));
    assert.doesNotMatch(err.message, /4711/);
  });

  test('wrong private key', async () => {
    const { driver } = makeDriver(root, { privateKey: sshd.otherKey });
    const err = await rejectsStorage(driver.connect(), 'permission', /refused.*private key/);
    assert.doesNotMatch(err.message, /PRIVATE KEY/);
  });

  test('nothing listening: connection refused, a clear reason', async () => {
    const { driver } = makeDriver(root, { sshPort: 1 });
    await rejectsStorage(driver.connect(), 'unreachable', /connection refused.*sshd/);
  });

  test('connection reset before the SSH banner: a clear reason, and no uncaught second error from ssh2', async () => {
    // A server that accepts, then resets: ssh2 reports the reset, then "Connection lost before handshake".
    let closed!: Promise<unknown>;
    const srv = net.createServer((s) => {
      closed = once(s, 'close');
      setTimeout(() => s.resetAndDestroy(), 50);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const { driver } = makeDriver(root, { sshPort: (srv.address() as net.AddressInfo).port });
      await rejectsStorage(driver.connect(), 'unreachable', /was reset \(ECONNRESET\)|connection .* failed/);
      await closed;
      await new Promise((r) => setTimeout(r, 200)); // an uncaught late error would fail this test here
    } finally {
      srv.close();
    }
  });

  test('directory missing, not a directory, not writable', async () => {
    const missing = path.join(work, 'missing');
    await rejectsStorage(makeDriver(missing).driver.connect(), 'unreachable', /does not exist on zimage-sftp@127\.0\.0\.1:\d+; create it/);
    const file = path.join(work, 'a-file');
    await fsp.writeFile(file, 'x');
    await rejectsStorage(makeDriver(file).driver.connect(), 'unreachable', /is not a directory/);
    const ro = await userDir(path.join(work, 'ro'));
    await fsp.chmod(ro, 0o555);
    await rejectsStorage(makeDriver(ro).driver.connect(), 'permission', /not writable by zimage-sftp/);
  });

  test('a host without openssl: Disconnected reason names the missing tool', async () => {
    const { driver } = makeDriver(root, { sshPort: sshd.limitedPort });
    await rejectsStorage(driver.connect(), 'unsupported', /lacks tools zimage needs on the host: openssl;/);
  });

  test('bad settings are refused before any connection', async () => {
    await rejectsStorage(makeDriver('relative/dir').driver.connect(), 'invalid', /absolute path/);
    await rejectsStorage(makeDriver(root, { privateKey: undefined }).driver.connect(), 'invalid', /neither a password nor a private key/);
  });
});

describe('images', () => {
  let driver: SftpDriver;
  before(async () => {
    driver = makeDriver(root).driver;
    await driver.connect();
  });

  test('import, commit, sizes as qemu-img sees them, digests of every algorithm as openssl computes them', async () => {
    const qcow = path.join(work, 'src.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '64M']);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 3M', qcow]);
    const bytes = await fsp.readFile(qcow);
    const installPath = await store(driver, 'img-q', bytes);
    assert.equal(installPath, path.join(root, 'images/img-q/img-q.template'));
    assert.deepEqual(await fsp.readFile(installPath), bytes);
    assert.deepEqual((await fsp.readdir(path.dirname(installPath))).sort(), ['img-q.template'], 'no temporary file left');
    const info = await qemuInfo(installPath, 'qcow2');
    assert.equal(await driver.allocatedSize(installPath), info['actual-size']);
    const st = await driver.stat(installPath);
    assert.equal(st.size, bytes.length);
    assert.equal(st.mtimeMs, Math.floor((await fsp.stat(installPath)).mtimeMs / 1000) * 1000, 'mtime in whole seconds, as SFTP gives it');

    const src = await driver.open(installPath);
    try {
      assert.equal(await src.size(), bytes.length);
      assert.deepEqual(Buffer.from(await src.read(0, 4)), Buffer.from('QFI\xfb', 'latin1'));
      assert.equal((await src.read(bytes.length - 10, 100)).length, 10, 'short read at the end');
      assert.equal((await src.read(bytes.length + 5, 100)).length, 0);
      const mid = await src.read(100_000, 300_000);
      assert.deepEqual(Buffer.from(mid), bytes.subarray(100_000, 400_000));
    } finally {
      await src.close();
    }

    for (const alg of DIGEST_ALGORITHMS) {
      const progress: Array<[number, number]> = [];
      const r = await driver.hash(installPath, [alg], { onProgress: (d, t) => progress.push([d, t]) });
      assert.equal(r[alg], await opensslDigest(installPath, opensslName(alg)), alg);
      assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
    }
    const all = await driver.hash(installPath, DIGEST_ALGORITHMS);
    for (const alg of DIGEST_ALGORITHMS) assert.equal(all[alg], await opensslDigest(installPath, opensslName(alg)), `${alg} in one pass`);

    const ranged = await driver.readStream(installPath, { start: 10, end: 70_009 });
    const chunks: Buffer[] = [];
    for await (const c of ranged) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), bytes.subarray(10, 70_010));

    await driver.delete(installPath);
    await assert.rejects(fsp.stat(path.dirname(installPath)), { code: 'ENOENT' }, 'bytes and image directory removed on the host');
    await driver.delete(installPath); // missing is fine
    await rejectsStorage(driver.allocatedSize(installPath), 'not-found', /does not exist on/);
    await rejectsStorage(driver.hash(installPath, ['MD5']), 'not-found');
    await rejectsStorage(driver.open(installPath), 'not-found');
    await rejectsStorage(driver.stat(installPath), 'not-found');
  });

  test('abort removes the partial file and the directory; discard removes a leftover .part', async () => {
    const t = await driver.createImport('img-a');
    await new Promise<void>((r, j) => t.stream.write(randomBytes(3 * MiB), (e) => (e ? j(e) : r())));
    await t.abort();
    await assert.rejects(fsp.stat(path.join(root, 'images/img-a')), { code: 'ENOENT' });

    const t2 = await driver.createImport('img-b');
    await new Promise<void>((r, j) => t2.stream.write(randomBytes(MiB), (e) => (e ? j(e) : r())));
    await driver.discard('img-b');
    await t2.abort().catch(() => undefined);
    await assert.rejects(fsp.stat(path.join(root, 'images/img-b')), { code: 'ENOENT' });
    await driver.discard('never-stored');
  });

  test('paths outside the root are refused, also through symbolic links on the host', async () => {
    for (const p of ['/etc/passwd', `${root}/../x`, `${root}/images/../../outside`]) {
      await rejectsStorage(driver.allocatedSize(p), 'invalid', /outside the backup storage directory/);
      await rejectsStorage(driver.hash(p, ['MD5']), 'invalid');
      await rejectsStorage(driver.delete(p), 'invalid');
      await rejectsStorage(driver.open(p), 'invalid');
    }
    const secret = path.join(work, 'secret.img');
    await fsp.writeFile(secret, 'secret');
    await fsp.mkdir(path.join(root, 'images/link'), { recursive: true });
    const link = path.join(root, 'images/link/link.template');
    await fsp.symlink(secret, link);
    await rejectsStorage(driver.allocatedSize(link), 'invalid', /outside/);
    await rejectsStorage(driver.hash(link, ['MD5']), 'invalid', /outside/);
    await rejectsStorage(driver.open(link), 'invalid', /outside/);
    await rejectsStorage(driver.delete(link), 'invalid', /outside/);
    assert.equal(await fsp.readFile(secret, 'utf8'), 'secret');
    // A planted link in place of an image directory: discard removes the link, never what it points at.
    await fsp.symlink(work, path.join(root, 'images/planted'));
    await driver.discard('planted');
    await assert.rejects(fsp.lstat(path.join(root, 'images/planted')), { code: 'ENOENT' });
    assert.equal(await fsp.readFile(secret, 'utf8'), 'secret');
    await fsp.rm(path.join(root, 'images/link'), { recursive: true });
    await rejectsStorage(driver.createImport('../x'), 'invalid', /not usable as a file name/);
    await rejectsStorage(driver.createImport('-rf'), 'invalid');
  });

  test('cancel kills the remote hash: no process holds the file when hash() returns', async () => {
    const big = path.join(root, 'images/big/big.template');
    await fsp.mkdir(path.dirname(big), { recursive: true });
    await fsp.writeFile(big, '');
    await fsp.truncate(big, 64 * 1024 ** 3);
    for (const algs of [['SHA512'], ['MD5', 'SHA256']] as const) {
      const ac = new AbortController();
      let seen = 0;
      const p = driver.hash(big, algs, {
        signal: ac.signal,
        onProgress: (done) => {
          seen = done;
          if (done > 0) ac.abort();
        },
      });
      await assert.rejects(p, (err: Error) => err.name === 'AbortError');
      assert.ok(seen > 0 && seen < 64 * 1024 ** 3, `progress was reported before the cancel (${seen})`);
      assert.deepEqual(await holdersOf(big), [], `${algs.join('+')}: the remote readers are gone`);
    }
    await fsp.rm(path.dirname(big), { recursive: true });
  });

  test('the remote hash also ends when the connection is lost (sshd stopped mid-hash)', async () => {
    const { driver: d } = makeDriver(root);
    await d.connect();
    const big = path.join(root, 'images/big2/big2.template');
    await fsp.mkdir(path.dirname(big), { recursive: true });
    await fsp.writeFile(big, '');
    await fsp.truncate(big, 64 * 1024 ** 3);
    let started!: () => void;
    const progressed = new Promise<void>((r) => (started = r));
    const p = d.hash(big, ['SHA256'], { onProgress: (done) => done > 0 && started() });
    p.catch(() => undefined); // asserted below; rejects while sshd is being stopped
    await progressed;
    await sshd.stop();
    await rejectsStorage(p, 'unreachable', /connection to zimage-sftp@127\.0\.0\.1:\d+ was lost/);
    await waitFor('the orphaned remote hash to end', async () => (await holdersOf(big)).length === 0, 5000);
    await rejectsStorage(d.connect(), 'unreachable', /connection refused/);
    await sshd.start();
    const cap = await d.connect();
    assert.ok(cap.totalCapacity > 0, 'connected again on a fresh connection');
    await fsp.rm(path.dirname(big), { recursive: true });
  });

  test('disk full on the host: no-space errors, nothing left behind', async (t) => {
    const small = await userDir(path.join(work, 'small'));
    const { uid, gid } = await testUserIds();
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=1m,uid=${uid},gid=${gid},mode=0755`, 'tmpfs', small]);
    } catch (err) {
      t.skip(`cannot mount a tmpfs here: ${(err as Error).message}`);
      return;
    }
    try {
      const { driver: d } = makeDriver(small);
      const cap = await d.connect();
      assert.equal(cap.totalCapacity, MiB);
      await rejectsStorage(d.createImport('big', { expectedSize: 2 * MiB }), 'no-space', /has \d+ bytes free but the image needs 2097152/);
      const target = await d.createImport('big');
      await assert.rejects(
        pipeline(Readable.from([randomBytes(MiB), randomBytes(MiB), randomBytes(MiB)]), target.stream),
        (err: unknown) => {
          assert.ok(err instanceof StorageError, String(err));
          assert.equal(err.kind, 'no-space', err.message);
          assert.match(err.message, /no space left/);
          return true;
        },
      );
      await assert.rejects(target.commit());
      await waitFor(
        'the partial file to be removed',
        async () => (await fsp.readdir(small)).every((n) => n !== 'images') || (await fsp.readdir(path.join(small, 'images'))).length === 0,
      );
      await d.close();
    } finally {
      await run('umount', [small]);
    }
  });

  test('directory removed on the host: connect says so; work resumes once it is back', async () => {
    const gone = await userDir(path.join(work, 'gone'));
    const { driver: d } = makeDriver(gone);
    await d.connect();
    await fsp.rm(gone, { recursive: true });
    await rejectsStorage(d.connect(), 'unreachable', /does not exist on .*mkdir -p/);
    await rejectsStorage(d.createImport('x'), 'unreachable', /does not exist/);
    await userDir(gone);
    await d.connect();
  });
});

describe('quoting attacks on the storage path', () => {
  test('a directory name full of shell syntax is only ever a name', async () => {
    const marker = path.join(work, 'PWNED');
    const name = `a b'c"d $(touch ${marker}) ; touch ${marker} \`touch ${marker}\` | & > x\n-rf *`;
    const dir = await userDir(path.join(work, name));
    const { driver } = makeDriver(dir);
    await driver.connect();
    const bytes = randomBytes(2 * MiB);
    const p = await store(driver, 'img1', bytes);
    assert.ok(p.startsWith(dir));
    assert.deepEqual(await fsp.readFile(p), bytes);
    assert.equal(await driver.allocatedSize(p), (await fsp.stat(p)).blocks * 512);
    // (openssl prefixes its output with '\\' for a file name with a newline: compare with node's digest)
    assert.equal((await driver.hash(p, ['SHA256'])).SHA256, createHash('sha256').update(bytes).digest('hex'));
    const src = await driver.open(p);
    assert.equal(await src.size(), bytes.length);
    await src.close();
    await driver.delete(p);
    await assert.rejects(fsp.stat(p), { code: 'ENOENT' });
    await store(driver, 'img2', bytes);
    await driver.discard('img2');
    await assert.rejects(fsp.stat(marker), { code: 'ENOENT' }, 'nothing was executed');
    assert.deepEqual(await fsp.readdir(dir), ['images'], 'nothing else was created');
  });
});

describe('host key', () => {
  test('a changed host key is refused, naming the expected and the seen fingerprints', async () => {
    const { driver, config } = makeDriver(root);
    await driver.connect();
    const old = config.hostKeyFingerprint as string;
    await driver.close();
    await sshd.stop();
    await sshd.start({ newHostKey: true });
    const { driver: again } = makeDriver(root, { hostKeyFingerprint: old });
    const err = await rejectsStorage(again.connect(), 'permission', /host key of 127\.0\.0\.1:\d+ has changed/);
    assert.ok(err.message.includes(`expected ${old}`), err.message);
    assert.ok(err.message.includes(`seen ${sshd.hostFingerprint}`), err.message);
    assert.notEqual(old, sshd.hostFingerprint);
    // Pinning the new key (what UpdateSftpBackupStorage does) lets it in.
    const { driver: pinned } = makeDriver(root, { hostKeyFingerprint: sshd.hostFingerprint });
    await pinned.connect();
  });
});
