import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertUrlAllowed,
  canonicalAddress,
  checkAddress,
  checkFilePath,
  DEFAULT_IMPORT_POLICY,
  ImportSourceError,
  makeImportPolicy,
  maskUrl,
  openImportSource,
  parseCidr,
  policyFromEnv,
} from '../src/sources/index.js';
import { readAll, rejectsKind } from './helpers/assert.js';

const rejectsSource = (p: Promise<unknown>, kind: ImportSourceError['kind'], re?: RegExp) => rejectsKind(p, ImportSourceError, kind, re);

test('canonicalAddress turns every spelling of an IPv4-mapped address into IPv4', () => {
  assert.deepEqual(canonicalAddress('::ffff:169.254.169.254'), { address: '169.254.169.254', family: 4 });
  assert.deepEqual(canonicalAddress('[::ffff:a9fe:a9fe]'), { address: '169.254.169.254', family: 4 });
  assert.deepEqual(canonicalAddress('0:0:0:0:0:ffff:7f00:1'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(canonicalAddress('fe80::1%eth0'), { address: 'fe80::1', family: 6 });
  assert.deepEqual(canonicalAddress('::1'), { address: '::1', family: 6 });
  assert.equal(canonicalAddress('example.com'), undefined);
  assert.equal(canonicalAddress('1.2.3'), undefined);
});

test('default networks: link-local and metadata denied, loopback, private and public allowed', () => {
  const denied: Array<[string, string]> = [
    ['169.254.169.254', '169.254.0.0/16'],
    ['169.254.0.1', '169.254.0.0/16'],
    ['::ffff:169.254.169.254', '169.254.0.0/16'],
    ['::ffff:a9fe:a9fe', '169.254.0.0/16'],
    ['fe80::1', 'fe80::/10'],
    ['febf:ffff::1', 'fe80::/10'],
    ['100.100.100.200', '100.100.100.200/32'],
    ['::ffff:100.100.100.200', '100.100.100.200/32'],
    ['fd00:ec2::254', 'fd00:ec2::254/128'],
    ['0.0.0.0', '0.0.0.0/8'],
    ['0.1.2.3', '0.0.0.0/8'],
    ['::', '::/128'],
  ];
  for (const [addr, net] of denied) {
    const v = checkAddress(addr, DEFAULT_IMPORT_POLICY);
    assert.equal(v.allowed, false, addr);
    assert.equal(v.allowed === false && v.reason === 'denied' && v.network, net, addr);
  }
  for (const addr of [
    '127.0.0.1',
    '::1',
    '10.1.2.3',
    '192.168.0.10',
    '172.16.5.5',
    'fd00::1',
    '100.100.100.201',
    '8.8.8.8',
    '2001:db8::1',
    'fec0::1',
    '169.253.255.255',
    '1.0.0.0',
  ]) {
    assert.deepEqual(checkAddress(addr, DEFAULT_IMPORT_POLICY), { allowed: true }, addr);
  }
  assert.deepEqual(checkAddress('not-an-ip', DEFAULT_IMPORT_POLICY), { allowed: false, reason: 'not-an-address' });
});

test('allowedNetworks restricts to those networks; the deny list still wins', () => {
  const p = makeImportPolicy({ allowedNetworks: ['10.0.0.0/8', '2001:db8::/32', '169.254.0.0/16'] });
  assert.deepEqual(checkAddress('10.9.9.9', p), { allowed: true });
  assert.deepEqual(checkAddress('::ffff:10.9.9.9', p), { allowed: true });
  assert.deepEqual(checkAddress('2001:db8:1::5', p), { allowed: true });
  assert.deepEqual(checkAddress('127.0.0.1', p), { allowed: false, reason: 'not-allowed' });
  assert.deepEqual(checkAddress('::1', p), { allowed: false, reason: 'not-allowed' });
  assert.equal(checkAddress('169.254.169.254', p).allowed, false);
  // An emptied deny list lets the metadata network through when it is explicitly allowed.
  assert.deepEqual(checkAddress('169.254.169.254', makeImportPolicy({ deniedNetworks: [], allowedNetworks: ['169.254.0.0/16'] })), {
    allowed: true,
  });
  // Extra denials: loopback.
  const noLoop = makeImportPolicy({ deniedNetworks: [...DEFAULT_IMPORT_POLICY.deniedNetworks, '127.0.0.0/8'] });
  assert.equal(checkAddress('127.0.0.5', noLoop).allowed, false);
  assert.equal(checkAddress('::ffff:127.0.0.5', noLoop).allowed, false);
});

test('parseCidr and makeImportPolicy validate their input', () => {
  assert.equal(parseCidr('10.0.0.0/8').text, '10.0.0.0/8');
  assert.equal(parseCidr('10.1.2.3').text, '10.1.2.3/32');
  assert.equal(parseCidr('[fd00::]/8').text, 'fd00::/8');
  for (const bad of ['10.0.0.0/33', '::/129', 'foo/8', '10.0.0.0/', '10.0.0.0/-1', '10.0.0/8', '']) {
    assert.throws(() => parseCidr(bad), /CIDR|prefix/, bad);
  }
  assert.throws(() => makeImportPolicy({ deniedNetworks: ['nope'] }), /CIDR/);
  assert.throws(() => makeImportPolicy({ allowedPorts: [70000] }), /port/);
  assert.throws(() => makeImportPolicy({ fileRoots: ['relative/dir'] }), /absolute/);
  assert.throws(() => makeImportPolicy({ idleTimeoutMs: 0 }), /idleTimeoutMs/);
});

test('policyFromEnv reads lists and numbers and keeps defaults for unset names', () => {
  const p = policyFromEnv({
    ZIMAGE_IMPORT_FILE_ROOTS: '/data/images, /srv',
    ZIMAGE_IMPORT_ALLOWED_NETWORKS: '10.0.0.0/8 192.168.0.0/16',
    ZIMAGE_IMPORT_DENIED_PORTS: '22,25',
    ZIMAGE_IMPORT_IDLE_TIMEOUT_MS: '5000',
    ZIMAGE_IMPORT_FILE_DENY_HIDDEN: 'false',
  });
  assert.deepEqual(p.fileRoots, ['/data/images', '/srv']);
  assert.deepEqual(p.allowedNetworks, ['10.0.0.0/8', '192.168.0.0/16']);
  assert.deepEqual(p.deniedPorts, [22, 25]);
  assert.equal(p.idleTimeoutMs, 5000);
  assert.equal(p.fileDenyHidden, false);
  assert.deepEqual(p.deniedNetworks, DEFAULT_IMPORT_POLICY.deniedNetworks);
  assert.equal(p.connectTimeoutMs, DEFAULT_IMPORT_POLICY.connectTimeoutMs);
  assert.deepEqual(policyFromEnv({ ZIMAGE_IMPORT_FILE_ROOTS: '' }).fileRoots, []);
  assert.throws(() => policyFromEnv({ ZIMAGE_IMPORT_DENIED_NETWORKS: '10.0.0.0/99' }), /ZIMAGE_IMPORT_DENIED_NETWORKS.*prefix/);
  assert.throws(() => policyFromEnv({ ZIMAGE_IMPORT_ALLOWED_PORTS: 'http' }), /ZIMAGE_IMPORT_ALLOWED_PORTS/);
});

test('ports and schemes are checked before any connection', () => {
  const only443 = makeImportPolicy({ allowedPorts: [443] });
  assert.throws(
    () => assertUrlAllowed(new URL('http://h:8080/x'), 'u', only443),
    (e: unknown) => e instanceof ImportSourceError && e.kind === 'forbidden' && /port 8080/.test(e.message),
  );
  assert.throws(() => assertUrlAllowed(new URL('http://h/x'), 'u', only443), /port 80/);
  assert.doesNotThrow(() => assertUrlAllowed(new URL('https://h/x'), 'u', only443));
  const no22 = makeImportPolicy({ deniedPorts: [22] });
  assert.throws(
    () => assertUrlAllowed(new URL('http://h:22/'), 'u', no22),
    (e: unknown) => e instanceof ImportSourceError && e.kind === 'forbidden',
  );
  assert.throws(
    () => assertUrlAllowed(new URL('https://h/'), 'u', makeImportPolicy({ allowedSchemes: ['http'] })),
    (e: unknown) => e instanceof ImportSourceError && e.kind === 'unsupported-scheme',
  );
});

test('maskUrl hides credentials and secret-looking query values', () => {
  const m = maskUrl('https://alice:s3cr3t@h.example/img.qcow2?X-Amz-Signature=abcdef&token=t0k&name=disk');
  assert.ok(!m.includes('s3cr3t') && !m.includes('alice') && !m.includes('abcdef') && !m.includes('t0k'), m);
  assert.match(m, /^https:\/\/\*\*\*@h\.example\/img\.qcow2\?/);
  assert.match(m, /name=disk/);
  assert.equal(maskUrl('http://h/x'), 'http://h/x');
  assert.equal(maskUrl('http://bob:pw@[bad/x'), 'http://***@[bad/x');
});

// ---------------------------------------------------------------------------------------------------------
// Local files

let tmp: string;
let root: string;
let outside: string;
let policy: ReturnType<typeof makeImportPolicy>;

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'zimage-src-'));
  root = path.join(tmp, 'allowed');
  outside = path.join(tmp, 'outside');
  await fsp.mkdir(path.join(root, 'sub'), { recursive: true });
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(root, 'sub', 'disk.raw'), 'inside bytes');
  await fsp.writeFile(path.join(outside, 'secret'), 'outside bytes');
  await fsp.symlink(path.join(outside, 'secret'), path.join(root, 'escape-link'));
  await fsp.symlink(outside, path.join(root, 'escape-dir'));
  await fsp.symlink(path.join(root, 'sub', 'disk.raw'), path.join(root, 'inner-link'));
  await fsp.mkdir(path.join(root, '.hidden'));
  await fsp.writeFile(path.join(root, '.hidden', 'key'), 'k');
  policy = makeImportPolicy({ fileRoots: [root] });
});

after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('checkFilePath accepts a regular file inside a root and returns its real path', async () => {
  const file = path.join(root, 'sub', 'disk.raw');
  assert.deepEqual(await checkFilePath(file, policy), { path: await fsp.realpath(file), size: 12 });
  // A symbolic link that stays inside is fine; the real path is returned.
  assert.deepEqual(await checkFilePath(path.join(root, 'inner-link'), policy), { path: await fsp.realpath(file), size: 12 });
  // `..` that stays inside is fine too.
  assert.equal((await checkFilePath(path.join(root, 'sub', '..', 'sub', 'disk.raw'), policy)).size, 12);
});

test('checkFilePath refuses escapes, non-regular files and disabled roots', async () => {
  await rejectsSource(checkFilePath(path.join(outside, 'secret'), policy), 'forbidden', /outside the directories/);
  await rejectsSource(checkFilePath(`${root}/../outside/secret`, policy), 'forbidden', /outside the directories/);
  await rejectsSource(checkFilePath(`${root}/sub/../../outside/secret`, policy), 'forbidden');
  await rejectsSource(checkFilePath(path.join(root, 'escape-link'), policy), 'forbidden', /symbolic link.*outside/);
  await rejectsSource(checkFilePath(path.join(root, 'escape-dir', 'secret'), policy), 'forbidden', /symbolic link/);
  // A root that is a prefix of another directory's name does not contain it.
  await rejectsSource(checkFilePath(`${root}-other/file`, policy), 'forbidden');
  await rejectsSource(checkFilePath(path.join(root, 'sub'), policy), 'forbidden', /a directory/);
  await rejectsSource(checkFilePath(root, policy), 'forbidden');
  await rejectsSource(checkFilePath('/dev/zero', makeImportPolicy({ fileRoots: ['/dev'] })), 'forbidden', /a device/);
  await rejectsSource(checkFilePath('/dev/zero', policy), 'forbidden');
  await rejectsSource(checkFilePath(path.join(root, '.hidden', 'key'), policy), 'forbidden', /hidden/);
  assert.equal(
    (await checkFilePath(path.join(root, '.hidden', 'key'), makeImportPolicy({ fileRoots: [root], fileDenyHidden: false }))).size,
    1,
  );
  // A root inside a dot-directory is usable; only segments below the root count.
  assert.equal(
    (await checkFilePath(path.join(root, '.hidden', 'key'), makeImportPolicy({ fileRoots: [path.join(root, '.hidden')] }))).size,
    1,
  );
  await rejectsSource(checkFilePath(path.join(root, 'missing.raw'), policy), 'not-found', /does not exist/);
  await rejectsSource(checkFilePath('relative/disk.raw', policy), 'invalid-url', /not absolute/);
  await rejectsSource(checkFilePath(path.join(root, 'sub', 'disk.raw'), makeImportPolicy({ fileRoots: [] })), 'forbidden', /disabled/);
  // Default roots follow ZStack's whitelist: /etc is not in it.
  await rejectsSource(checkFilePath('/etc/passwd', DEFAULT_IMPORT_POLICY), 'forbidden');
  await rejectsSource(checkFilePath('/home/../etc/passwd', DEFAULT_IMPORT_POLICY), 'forbidden', /\/etc\/passwd/);
});

test('openImportSource opens file:/// urls and plain absolute paths under the policy', async () => {
  const file = path.join(root, 'sub', 'disk.raw');
  const a = await openImportSource(`file://${file}`, policy);
  assert.equal(a.length, 12);
  assert.equal(a.displayUrl, `file://${file}`);
  assert.equal((await readAll(a.stream)).toString(), 'inside bytes');
  const b = await openImportSource(file, policy);
  assert.equal((await readAll(b.stream)).toString(), 'inside bytes');
  assert.equal(b.displayUrl, `file://${file}`);
  await rejectsSource(openImportSource(`file://${root}/../outside/secret`, policy), 'forbidden');
  await rejectsSource(openImportSource(`file://${root}/escape-link`, policy), 'forbidden');
  await rejectsSource(openImportSource(`file://otherhost${file}`, policy), 'invalid-url', /file:\/\/\//);
  await rejectsSource(openImportSource('file:///dev/zero', makeImportPolicy({ fileRoots: ['/dev'] })), 'forbidden');
});

test('openImportSource refuses unknown schemes and malformed urls', async () => {
  await rejectsSource(openImportSource('ftp://user:pw@example.com/disk.img', policy), 'unsupported-scheme', /"ftp".*http:\/\//);
  const e = await rejectsSource(openImportSource('gopher://example.com/1', policy), 'unsupported-scheme');
  assert.match(e.message, /gopher/);
  await rejectsSource(openImportSource('sftp://h/x', policy), 'unsupported-scheme');
  const ftp = await rejectsSource(openImportSource('ftp://user:pw@example.com/disk.img', policy), 'unsupported-scheme');
  assert.ok(!ftp.message.includes('pw'), ftp.message);
  await rejectsSource(openImportSource('not a url', policy), 'invalid-url');
  await rejectsSource(openImportSource('', policy), 'invalid-url');
  await rejectsSource(openImportSource('images/disk.raw', policy), 'invalid-url');
});
