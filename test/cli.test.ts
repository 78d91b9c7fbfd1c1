/**
 * The `zimage` client CLI against a real `zimage serve` (loopback), through the REST API only: every command,
 * --json parsed, exit codes (1 API error, 2 usage, 3 unsafe image, 130 interrupted), the session file's mode,
 * SIGINT without a terminal, and resume of an interrupted upload. Terminal behaviour: cli-terminal.test.ts.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startCliWorld, spawnCli, type CliWorld } from './helpers/cli.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, startSshd, userDir } from './helpers/sshd.js';
import { execFileP, opensslDigest, qemuInfo, waitFor } from './helpers/zimage.js';

let w: CliWorld;
let disk: string;
let storageUuid: string;

before(async () => {
  w = await startCliWorld();
  disk = join(w.work, 'disk.qcow2');
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '2G']);
  // Some data in it, so the digests are of real content.
  await execFileP('qemu-io', ['-c', 'write -P 0x5a 0 3M', disk]);
  w.http.addFile('disk.qcow2', { path: disk });
  await w.server.client.login();
  // The CLI session and the one backup storage every image test puts its image on (`image add` picks the only one).
  const login = await w.run(['login', '--url', w.server.url], 'password\n');
  assert.equal(login.code, 0, login.stderr);
  await mkdir(join(w.work, 'store'));
  const inv = await w.json(['storage', 'add', 'local', 'cli-store', '--url', join(w.work, 'store')]);
  assert.equal(inv.name, 'cli-store');
  assert.equal(inv.status, 'Connected');
  storageUuid = inv.uuid;
});
after(async () => {
  await w?.close();
});

/**
 * A CLI user with a config home of its own (its own session file), for the tests that log in and out: the
 * session the other tests use (logged in by `before`) stays as it is.
 */
async function ownHome(name: string) {
  const config = join(w.work, name);
  await mkdir(config);
  const run = (args: string[], input?: string, env: Record<string, string> = {}) => w.run(args, input, { XDG_CONFIG_HOME: config, ...env });
  const ok = async (args: string[], input?: string) => {
    const r = await run(args, input);
    if (r.code !== 0) throw new Error(`zimage ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  return {
    config,
    sessionFile: join(config, 'zimage', 'session.json'),
    run,
    ok,
    json: async (args: string[]) => JSON.parse(await ok([...args, '--json'])),
  };
}

test('login: password from ZIMAGE_PASSWORD or stdin, sent as SHA-512; session file 0600 in XDG_CONFIG_HOME', async () => {
  const u = await ownHome('login-config');
  const sessionFile = () => u.sessionFile;
  const bad = await u.run(['login', '--url', w.server.url], undefined, { ZIMAGE_PASSWORD: 'wrong' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /ID\.1000/);
  await assert.rejects(stat(sessionFile()), /ENOENT/);

  const byStdin = await u.run(['login', '--url', w.server.url, '--user', 'admin'], 'password\n');
  assert.equal(byStdin.code, 0, byStdin.stderr);
  const first = JSON.parse(await readFile(sessionFile(), 'utf8'));

  const r = await u.run(['login', '--url', w.server.url, '--json'], undefined, { ZIMAGE_PASSWORD: 'password' });
  assert.equal(r.code, 0, r.stderr);
  const inv = JSON.parse(r.stdout);
  const st = await stat(sessionFile());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await stat(join(u.config, 'zimage'))).mode & 0o777, 0o700);
  const saved = JSON.parse(await readFile(sessionFile(), 'utf8'));
  assert.equal(saved.url, w.server.url);
  assert.equal(saved.sessionUuid, inv.uuid);
  assert.notEqual(saved.sessionUuid, first.sessionUuid);
  // The session it replaced was logged out on the server.
  const old = await w.server.client.raw('GET', `/accounts/sessions/${first.sessionUuid}/valid`);
  assert.equal(old.body?.valid, false, old.text);
});

test('storage add local (in before), list (table and --json), show, reconnect', async () => {
  const table = await w.ok(['storage', 'list']);
  assert.match(table.split('\n')[0]!, /^UUID\s+NAME\s+TYPE\s+STATUS/);
  assert.match(table, new RegExp(`${storageUuid}\\s+cli-store\\s+LocalBackupStorage\\s+Connected`));
  const list = await w.json(['storage', 'list']);
  assert.ok(list.some((s: any) => s.uuid === storageUuid));
  assert.equal((await w.json(['storage', 'show', 'cli-store'])).uuid, storageUuid);
  assert.ok((await w.json(['storage', 'reconnect', storageUuid])).totalCapacity > 0);
});

test('image add (from http), list, show, sync, hash, export: values match qemu-img and openssl', async () => {
  const inv = await w.json(['image', 'add', 'cli-disk', w.http.url('/files/disk.qcow2'), '--format', 'qcow2']);
  assert.equal(inv.status, 'Ready');
  assert.equal(inv.md5Sum, await opensslDigest(disk, 'md5'));
  assert.equal(inv.backupStorageRefs[0].backupStorageUuid, storageUuid);

  const list = await w.json(['image', 'list']);
  assert.ok(list.some((i: any) => i.uuid === inv.uuid && i.status === 'Ready'));
  const table = await w.ok(['image', 'list', '--q', 'name=cli-disk']);
  assert.match(table, new RegExp(`${inv.uuid}\\s+cli-disk\\s+qcow2\\s+Ready\\s+Enabled\\s+2\\.00 GiB`));

  const shown = await w.ok(['image', 'show', 'cli-disk']);
  assert.match(shown, /^uuid: +[0-9a-f]{32}$/m);
  assert.match(shown, /SHA256\s+[0-9a-f]{64}/);

  const synced = await w.json(['image', 'sync', inv.uuid]);
  assert.equal(synced.size, (await qemuInfo(disk))['virtual-size']);
  const hashed = await w.json(['image', 'hash', 'cli-disk', '--algorithm', 'SHA256']);
  assert.equal(hashed.md5Sum, await opensslDigest(disk, 'sha256'));
  assert.equal((await w.ok(['image', 'hash', 'cli-disk'])).trim(), `MD5 ${await opensslDigest(disk, 'md5')}  cli-disk`);

  const ex = await w.json(['image', 'export', 'cli-disk']);
  assert.equal(ex.exportMd5Sum, inv.md5Sum);
  const res = await fetch(ex.imageUrl);
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.deepEqual(bytes, await readFile(disk));
});

test('image delete, recover, delete again, expunge', async () => {
  assert.equal((await w.json(['image', 'add', 'cli-gone', w.http.url('/files/disk.qcow2'), '--format', 'qcow2'])).status, 'Ready');
  const deleted = await w.run(['image', 'delete', 'cli-gone']);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.equal((await w.json(['image', 'show', 'cli-gone'])).status, 'Deleted');
  assert.equal((await w.json(['image', 'recover', 'cli-gone'])).status, 'Ready');
  await w.ok(['image', 'delete', 'cli-gone']);
  await w.ok(['image', 'expunge', 'cli-gone']);
  const gone = await w.run(['image', 'show', 'cli-gone']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no image named cli-gone/);
});

test('exit codes: API errors 1 with the ZStack code and details, usage 2, unsafe image 3', async () => {
  const refused = await w.run(['image', 'add', 'nowhere', 'http://127.0.0.1:1/none.qcow2']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /error: [A-Z]+\.\d+ .*: .*127\.0\.0\.1:1/);

  const unknown = await w.run(['image', 'hash', '0123456789abcdef0123456789abcdef']);
  assert.equal(unknown.code, 1);
  const badAlg = await w.run(['image', 'hash', 'unsafe-none', '--algorithm', 'CRC99']);
  assert.equal(badAlg.code, 1);

  for (const args of [
    ['image', 'add', 'only-a-name'],
    ['image', 'add', 'x', 'y', '--media-type', 'Floppy'],
    ['nosuch'],
    ['storage', 'add', 'local', 'x'],
    ['storage', 'add', 'ceph', 'x', '--mon-url', '10.0.0.1'],
    ['storage', 'add', 'sftp', 'x', '--hostname', 'h', '--username', 'u', '--url', '/d', '--ssh-port', '99999'],
  ]) {
    const r = await w.run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /error: /);
  }
  const empty = join(w.work, 'empty.img');
  await writeFile(empty, '');
  assert.equal((await w.run(['image', 'upload', empty])).code, 2);

  const base = join(w.work, 'base.qcow2');
  const top = join(w.work, 'top.qcow2');
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  const local = await w.run(['image', 'upload', top]);
  assert.equal(local.code, 3, local.stderr);
  assert.match(local.stderr, /refused as unsafe.*backing/);
  const server = await w.run(['image', 'upload', top, '--name', 'unsafe-server', '--no-check']);
  assert.equal(server.code, 3, server.stderr);
  assert.match(server.stderr, /refused as unsafe/);
  w.http.addFile('top.qcow2', { path: top });
  const added = await w.run(['image', 'add', 'unsafe-add', w.http.url('/files/top.qcow2')]);
  assert.equal(added.code, 3, added.stderr);
  assert.match(added.stderr, /SYS\.1006.*refused as unsafe/);
});

test('upload streams a file; killed mid-way, the next run resumes from the server offset (MD5 = openssl)', async () => {
  const file = join(w.work, 'big.raw');
  await execFileP('openssl', ['rand', '-out', file, String(24 * 1024 * 1024)]);
  const first = spawnCli(['image', 'upload', file, '--name', 'resumed', '--limit-rate', '4M'], w.env);
  let imageUuid = '';
  await waitFor(
    'upload bytes to reach the server',
    async () => {
      const q = await w.server.client.raw('GET', '/images?q=name=resumed');
      imageUuid = q.body?.inventories?.[0]?.uuid ?? '';
      if (!imageUuid) return false;
      const d = await w.server.client.raw('GET', `/images/upload-job/details/${imageUuid}`);
      return (d.body?.existingJobDetails?.[0]?.offset ?? 0) > 2 * 1024 * 1024;
    },
    20_000,
  );
  first.proc.kill('SIGKILL');
  await first.done;
  const d = await w.server.client.raw('GET', `/images/upload-job/details/${imageUuid}`);
  const offset = d.body.existingJobDetails[0].offset as number;
  assert.ok(offset > 0 && offset < 24 * 1024 * 1024, `offset ${offset}`);

  const again = await w.run(['image', 'upload', file, '--name', 'resumed', '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`resuming the upload of image ${imageUuid} \\(resumed\\) at byte \\d+`));
  const inv = JSON.parse(again.stdout);
  assert.equal(inv.uuid, imageUuid);
  assert.equal(inv.status, 'Ready');
  assert.equal(inv.md5Sum, await opensslDigest(file, 'md5'));
  assert.equal(again.stdout.includes('█'), false, 'no progress bar when stdout is not a terminal');
});

test('SIGINT without a terminal cancels the job (SYS.1017), exit 130; with --detach the job keeps running', async () => {
  const file = join(w.work, 'slow.raw');
  await execFileP('openssl', ['rand', '-out', file, String(8 * 1024 * 1024)]);
  w.http.addFile('slow.raw', { path: file });
  const url = w.http.url('/slow/slow.raw?bps=1000000');

  const a = spawnCli(['image', 'add', 'sigint', url], w.env);
  await waitFor(
    'the add to start',
    async () => (await w.server.client.raw('GET', '/images?q=name=sigint')).body?.inventories?.length === 1,
    15_000,
  );
  a.proc.kill('SIGINT');
  const r = await a.done;
  assert.equal(r.code, 130, r.stderr);
  const m = /job ([0-9a-f]{32}) cancelled \(SYS\.1017\)/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const job = await w.server.client.poll(`${w.server.url}/zstack/v1/api-jobs/${m[1]}`);
  assert.equal(job.status, 503);
  assert.equal(job.body.error.code, 'SYS.1017');
  assert.equal(r.stdout.includes('%'), false, 'no progress bar without a terminal');

  const b = spawnCli(['image', 'add', 'detached', url, '--detach'], w.env);
  await waitFor(
    'the add to start',
    async () => (await w.server.client.raw('GET', '/images?q=name=detached')).body?.inventories?.length === 1,
    15_000,
  );
  b.proc.kill('SIGINT');
  const rb = await b.done;
  assert.equal(rb.code, 130);
  const jb = /job ([0-9a-f]{32}) keeps running/.exec(rb.stderr);
  assert.ok(jb, rb.stderr);
  const running = await w.json(['job', 'show', jb[1]!]);
  assert.equal(running.progress.state, 'Running');
  assert.ok(running.progress.bytesTotal > 0);

  // job cancel ends it; job show then reports the error.
  await w.ok(['job', 'cancel', jb[1]!]);
  await waitFor(
    'the job to end',
    async () => (await w.server.client.raw('GET', `/task-progresses/${jb[1]}`)).body?.inventories?.[0]?.opaque?.state === 'Canceled',
  );
  const ended = await w.json(['job', 'show', jb[1]!]);
  assert.equal(ended.error.code, 'SYS.1017');
  const text = await w.ok(['job', 'show', jb[1]!]);
  assert.match(text, /state: +Canceled/);
  assert.match(text, /error: +SYS\.1017/);
  const waited = await w.run(['job', 'show', jb[1]!, '--wait']);
  assert.equal(waited.code, 1);
  assert.match(waited.stderr, /SYS\.1017/);
});

test('storage add sftp over a real sshd, the SSH password read from stdin; show, reconnect, delete', async () => {
  const sshd = await startSshd();
  try {
    await chmod(w.work, 0o755);
    const dir = await userDir(join(w.work, 'sftp-store'));
    const args = [
      'storage',
      'add',
      'sftp',
      'cli-sftp',
      '--hostname',
      '127.0.0.1',
      '--ssh-port',
      String(sshd.port),
      '--username',
      PASSWORD_USER,
      '--url',
      dir,
      '--json',
    ];
    const r = await w.run(args, `${PASSWORD_USER_PASSWORD}\n`);
    assert.equal(r.code, 0, r.stderr);
    const inv = JSON.parse(r.stdout);
    assert.equal(inv.type, 'SftpBackupStorage');
    assert.equal(inv.status, 'Connected');
    assert.equal(inv.hostKeyFingerprint, sshd.hostFingerprint);
    assert.equal(JSON.stringify(inv).includes(PASSWORD_USER_PASSWORD), false, 'the password is never printed');
    assert.match(await w.ok(['storage', 'show', 'cli-sftp']), new RegExp(`hostname: +127\\.0\\.0\\.1[\\s\\S]*ssh port: +${sshd.port}`));
    assert.equal((await w.json(['storage', 'reconnect', 'cli-sftp'])).status, 'Connected');
    await w.ok(['storage', 'delete', 'cli-sftp']);
  } finally {
    await sshd.stop();
  }
});

test('storage delete; logout ends the session on the server; then commands say to log in (exit 1)', async () => {
  const u = await ownHome('logout-config');
  const sessionFile = () => u.sessionFile;
  const login = await u.run(['login', '--url', w.server.url], 'password\n');
  assert.equal(login.code, 0, login.stderr);
  await mkdir(join(w.work, 'store2'));
  const extra = await u.json(['storage', 'add', 'local', 'to-delete', '--url', join(w.work, 'store2')]);
  await u.ok(['storage', 'delete', 'to-delete']);
  assert.equal(
    (await u.json(['storage', 'list'])).some((s: any) => s.uuid === extra.uuid),
    false,
  );

  const session = JSON.parse(await readFile(sessionFile(), 'utf8'));
  assert.match(await u.ok(['logout']), /logged out/);
  await assert.rejects(stat(sessionFile()), /ENOENT/);
  const v = await w.server.client.raw('GET', `/accounts/sessions/${session.sessionUuid}/valid`);
  assert.equal(v.body?.valid, false);
  const r = await u.run(['image', 'list']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not logged in.*zimage login/);

  // A session ended elsewhere: the ZStack error and what to do.
  await u.run(['login', '--url', w.server.url], 'password\n');
  const current = JSON.parse(await readFile(sessionFile(), 'utf8'));
  await w.server.client.raw('DELETE', `/accounts/sessions/${current.sessionUuid}`);
  const expired = await u.run(['image', 'list']);
  assert.equal(expired.code, 1);
  assert.match(expired.stderr, /ID\.1001 .*\n.*run: zimage login/);
});
