/**
 * SftpBackupStorage over HTTP, against a real OpenSSH sshd on 127.0.0.1: Add/Query/Reconnect/Update,
 * AddImage (file:// and http://), SyncImageSize, CalculateImageHash, cancel, and the faults a storage host
 * has (sshd gone mid-hash, directory removed, disk full, host key changed). No secret in any answer or log.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { DIGEST_ALGORITHMS, opensslName } from '../src/hashing/algorithms.js';
import { startTestHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { PASSWORD_USER, PASSWORD_USER_PASSWORD, SSHD_HOSTS, startSshd, testUserIds, userDir, type TestSshd } from './helpers/sshd.js';
import { execFileP, opensslDigest, qemuInfo, tempDir, ZClient, waitFor } from './helpers/zimage.js';
import { checkLifecycleOn } from './helpers/lifecycle-checks.js';
import { assertZStackError } from './helpers/assert.js';

const MiB = 1 << 20;

describe('SftpBackupStorage over the ZStack API', () => {
  let sshd: TestSshd;
  let work: string;
  let fixtures: string;
  let app: App;
  let c: ZClient;
  let http: TestHttpServer;
  let logText = '';
  let bs: string; // the shared password storage, on 127.0.0.1, in `root`
  let keyBs: string; // the shared private-key storage
  let root: string;
  const rawBytes = randomBytes(3 * MiB + 17); // served over http as disk.raw
  const answers: string[] = [];

  const call = async (method: string, p: string, body?: unknown, headers?: Record<string, string>) => {
    const res = await c.call(method, p, body, headers);
    answers.push(res.text);
    return res;
  };
  const ok = async (method: string, p: string, body?: unknown) => {
    const res = await call(method, p, body);
    assert.equal(res.status, 200, res.text);
    return res.body;
  };
  const failure = async (method: string, p: string, body: unknown, code: string, re?: RegExp) => {
    return assertZStackError(await call(method, p, body), code, re);
  };
  const storage = async (uuid: string) => (await ok('GET', `/backup-storage/sftp/${uuid}`)).inventories[0];
  // ZStack allows one SFTP storage per hostname: an add without a hostname goes to the next free loopback address
  // of the sshd. 127.0.0.1 is the shared password storage's; SSHD_HOSTS[3] is kept for the refusal on the port
  // without openssl (that port listens on the first four addresses only).
  const freeHosts = SSHD_HOSTS.filter((h, i) => h !== '127.0.0.1' && i !== 3);
  const addSftp = async (params: Record<string, unknown>) => {
    const hostname = (params.hostname as string | undefined) ?? freeHosts[0];
    const res = await call('POST', '/backup-storage/sftp', {
      params: { hostname, sshPort: sshd.port, username: PASSWORD_USER, ...params },
    });
    if (res.status === 200 && hostname === freeHosts[0]) freeHosts.shift();
    return res;
  };
  const addImage = async (params: Record<string, unknown>) => (await ok('POST', '/images', { params })).inventory;
  /** rawBytes imported from http:// into `storages`; installPath is the copy on the first one. */
  const addRawImage = async (name: string, storages: string[]) => {
    const inv = await addImage({ name, url: http.url('/files/disk.raw'), format: 'raw', backupStorageUuids: storages });
    const installPath = inv.backupStorageRefs.find((r: any) => r.backupStorageUuid === storages[0]).installPath as string;
    return { inv, uuid: inv.uuid as string, installPath };
  };
  const progressOf = async (job: string) => (await c.raw('GET', `/task-progresses/${job}`)).body.inventories[0];
  const startHash = async (image: string, storageUuid: string, algorithm: string) => {
    const res = await c.raw('PUT', `/images/${image}/actions`, { calculateImageHash: { backupStorageUuid: storageUuid, algorithm } });
    assert.equal(res.status, 202, res.text);
    return res.body.location as string;
  };

  /** Pids that have `file` open (the "remote" host is this machine). */
  const holdersOf = async (file: string): Promise<number[]> => {
    const real = await fsp.realpath(file);
    const out: number[] = [];
    for (const pid of await fsp.readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      for (const fd of await fsp.readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
        if ((await fsp.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === real) {
          out.push(Number(pid));
          break;
        }
      }
    }
    return out;
  };

  before(async () => {
    sshd = await startSshd();
    work = await tempDir('zimage-api-sftp-');
    await fsp.chmod(work, 0o755);
    fixtures = path.join(work, 'fixtures');
    await fsp.mkdir(fixtures);
    root = await userDir(path.join(work, 'bs'));
    const log = new Writable({
      write(chunk, _enc, cb) {
        logText += chunk.toString();
        cb();
      },
    });
    const dataDir = path.join(work, 'data');
    await fsp.mkdir(dataDir);
    const config = { ...loadConfig({ dataDir, port: 0, host: '127.0.0.1' }, { ZIMAGE_IMPORT_FILE_ROOTS: fixtures }), pingIntervalSec: 1 };
    app = await startApp(config, pino({ level: 'trace' }, log));
    c = new ZClient(app.url);
    await c.login();
    http = await startTestHttpServer();
    http.addFile('disk.raw', rawBytes);
    // The storages most tests use; the add tests check the answers on storages of their own.
    const pw = await addSftp({ name: 'sftp-shared', hostname: '127.0.0.1', password: PASSWORD_USER_PASSWORD, url: root });
    assert.equal(pw.status, 200, pw.text);
    assert.equal(pw.body.inventory.status, 'Connected');
    bs = pw.body.inventory.uuid;
    const key = await addSftp({ name: 'sftp-shared-key', privateKey: sshd.clientKey, url: await userDir(path.join(work, 'bs-key')) });
    assert.equal(key.status, 200, key.text);
    assert.equal(key.body.inventory.status, 'Connected');
    keyBs = key.body.inventory.uuid;
  });

  after(async () => {
    await app?.stop();
    await http?.close();
    await sshd?.close();
    await fsp.rm(work, { recursive: true, force: true });
  });

  test('AddSftpBackupStorage with a password; Query shows hostname, username, sshPort, never the password', async () => {
    const own = await userDir(path.join(work, 'bs-pw'));
    const host = freeHosts[0]!;
    const res = await addSftp({
      name: 'sftp-pw',
      hostname: host,
      password: PASSWORD_USER_PASSWORD,
      url: `${own}/`,
      description: 'remote images',
    });
    assert.equal(res.status, 200, res.text);
    answers.push(res.text);
    const inv = res.body.inventory;
    const bs = inv.uuid;
    assert.equal(inv.type, 'SftpBackupStorage');
    assert.equal(inv.url, own, 'url normalised');
    assert.equal(inv.hostname, host);
    assert.equal(inv.username, PASSWORD_USER);
    assert.equal(inv.sshPort, sshd.port);
    assert.equal(inv.status, 'Connected');
    assert.equal(inv.state, 'Enabled');
    assert.equal(inv.hostKeyFingerprint, sshd.hostFingerprint, 'host key recorded on first connect');
    const fs = await fsp.statfs(own);
    assert.equal(inv.totalCapacity, fs.blocks * fs.bsize);
    assert.equal(inv.password, undefined);
    // At rest the settings are encrypted: the password is not in the database in any readable form.
    const stored = await app.db.db.selectFrom('backup_storage').select('config').where('uuid', '=', bs).executeTakeFirstOrThrow();
    assert.match(stored.config, /^enc:v1:/);
    assert.ok(!stored.config.includes(PASSWORD_USER_PASSWORD) && !stored.config.includes('hostname'));

    const all = await ok('GET', '/backup-storage/sftp');
    assert.ok(all.inventories.some((b: any) => b.uuid === bs && b.hostname === host));
    assert.ok(all.inventories.every((b: any) => b.type === 'SftpBackupStorage'));
    const one = await ok('GET', `/backup-storage/sftp/${bs}`);
    assert.equal(one.inventories.length, 1);
    assert.equal(one.inventories[0].sshPort, sshd.port);
    const generic = await ok('GET', `/backup-storage/${bs}`);
    assert.equal(generic.inventories[0].username, PASSWORD_USER);
    assert.equal((await ok('GET', `/backup-storage/sftp?q=name=sftp-pw`)).inventories.length, 1);
    assert.ok((await ok('GET', '/backup-storage/types')).types.includes('SftpBackupStorage'));

    // SftpBackupStorageApiInterceptor: the same hostname again, even with another directory, is SYS.1006.
    const dup = await addSftp({ name: 'again', hostname: host, password: PASSWORD_USER_PASSWORD, url: `${own}/other` });
    answers.push(dup.text);
    assert.equal(dup.body.error.code, 'SYS.1006');
    assert.equal(dup.body.error.details, `duplicate backup storage. There has been a sftp backup storage[hostname:${host}] existing`);
  });

  test('AddSftpBackupStorage with a private key instead of a password', async () => {
    const keyRoot = await userDir(path.join(work, 'bs-key-own'));
    const res = await addSftp({ name: 'sftp-key', privateKey: sshd.clientKey, url: keyRoot });
    answers.push(res.text);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.inventory.status, 'Connected');
    assert.equal(res.body.inventory.privateKey, undefined);
  });

  test('refusals: wrong password, no credentials, bad key, relative url, a host without openssl', async () => {
    const wrong = await addSftp({ name: 'bad', password: 'wrong-password-1234', url: root + '/x' });
    answers.push(wrong.text);
    assert.equal(wrong.status, 503, wrong.text);
    // BackupStorageManagerImpl: SYS.1002 caused by the connect error, with its text.
    assert.equal(wrong.body.error.code, 'SYS.1002');
    assert.equal(wrong.body.error.cause.code, 'SYS.1006');
    assert.equal(wrong.body.error.cause.details, wrong.body.error.details);
    assert.match(wrong.body.error.details, /SSH login to zimage-sftp@127\.0\.0\.\d+:\d+ was refused/);
    assert.doesNotMatch(wrong.text, /wrong-password-1234/);

    const none = await addSftp({ name: 'bad', url: root });
    assert.equal(none.body.error.code, 'SYS.1007');
    assert.match(
      none.body.error.details,
      /field\[password\] of message\[org\.zstack\.storage\.backup\.sftp\.APIAddSftpBackupStorageMsg\] is mandatory/,
    );
    const badKey = await addSftp({
      name: 'bad',
      privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n',
      url: root,
    });
    assert.equal(badKey.body.error.code, 'SYS.1007');
    assert.match(badKey.body.error.details, /privateKey.*cannot be parsed/);
    assert.doesNotMatch(badKey.text, /nope/);
    const relative = await addSftp({ name: 'bad', password: 'x', url: 'relative/dir' });
    assert.equal(relative.body.error.code, 'SYS.1007');
    const port = await addSftp({ name: 'bad', password: 'x', url: root, sshPort: 70000 });
    assert.equal(port.body.error.code, 'SYS.1007');
    const tools = await addSftp({
      name: 'bad',
      hostname: SSHD_HOSTS[3],
      password: PASSWORD_USER_PASSWORD,
      url: root + '/y',
      sshPort: sshd.limitedPort,
    });
    assert.equal(tools.body.error.code, 'SYS.1002');
    assert.match(tools.body.error.details, /lacks tools zimage needs on the host: openssl/);
    // SftpBackupStorageApiInterceptor's checks, with its codes and texts.
    const badHost = await addSftp({ name: 'bad', hostname: 'bad host!', password: 'x', url: root + '/z' });
    assert.equal(badHost.body.error.code, 'SYS.1007');
    assert.equal(badHost.body.error.details, 'hostname[bad host!] is neither an IPv4 address nor a valid hostname');
    for (const url of ['/proc/zimage', '/dev/shm/x', '/sys/x']) {
      const sys = await addSftp({ name: 'bad', password: 'x', url });
      assert.equal(sys.body.error.code, 'SYS.1007', url);
      assert.equal(sys.body.error.details, ' the url contains an invalid folder[/dev or /proc or /sys]');
    }
    const badUpdate = await call('PUT', `/backup-storage/sftp/${bs}/actions`, {
      updateSftpBackupStorage: { hostname: 'under_score.example' },
    });
    assert.equal(badUpdate.body.error.code, 'SYS.1007');
    assert.equal(badUpdate.body.error.details, 'hostname[under_score.example] is neither an IPv4 address nor a valid hostname');
    assert.equal((await ok('GET', '/backup-storage/sftp?q=name=bad')).inventories.length, 0, 'nothing was added');
  });

  /**
   * The images the add, sync and hash tests share, made by whichever of them runs first, with the add test's
   * checks of the answers. SyncImageSize grows the qcow2 copy: the hash test checks against the file as it is.
   */
  let sharedImages:
    Promise<{ qcowImage: { uuid: string; installPath: string }; rawImage: { uuid: string; installPath: string } }> | undefined;
  const addSharedImages = async () => {
    const fixture = path.join(fixtures, 'disk.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', fixture, '256M']);
    await execFileP('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 0 5M', fixture]);
    const inv = await addImage({ name: 'from-file', url: `file://${fixture}`, format: 'qcow2', backupStorageUuids: [bs] });
    assert.equal(inv.status, 'Ready');
    const installPath = inv.backupStorageRefs[0].installPath as string;
    assert.ok(installPath.startsWith(`${root}/images/`), installPath);
    const q = await qemuInfo(installPath, 'qcow2');
    assert.equal(inv.size, q['virtual-size']);
    assert.equal(inv.actualSize, q['actual-size']);
    assert.equal(inv.md5Sum, await opensslDigest(fixture, 'md5'));

    const { inv: raw, installPath: rawPath } = await addRawImage('from-http', [bs, keyBs]);
    assert.equal(raw.status, 'Ready');
    assert.equal(raw.backupStorageRefs.length, 2);
    assert.deepEqual(await fsp.readFile(rawPath), rawBytes);
    const rq = await qemuInfo(rawPath, 'raw');
    assert.equal(raw.size, rq['virtual-size']);
    assert.equal(raw.actualSize, rq['actual-size']);
    const digests = (await ok('GET', `/images/${raw.uuid}/digests`)).inventories;
    assert.ok(digests.some((d: any) => d.algorithm === 'SHA256' && d.backupStorageUuid === bs));
    return { qcowImage: { uuid: inv.uuid as string, installPath }, rawImage: { uuid: raw.uuid as string, installPath: rawPath } };
  };
  const images = () => (sharedImages ??= addSharedImages());

  test('AddImage from file:// and http:// into the SFTP storage: bytes on the host, sizes as qemu-img, MD5 as openssl', async () => {
    await images(); // the checks are in addSharedImages
  });

  test('SyncImageSize measures the copies on the host: size and actualSize = qemu-img info', async () => {
    const { qcowImage, rawImage } = await images();
    // Make the stored copy differ from what was recorded: grow the qcow2 on the host.
    await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', qcowImage.installPath, '512M']);
    await execFileP('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x44 300M 2M', qcowImage.installPath]);
    const inv = (await ok('PUT', `/images/${qcowImage.uuid}/actions`, { syncImageSize: {} })).inventory;
    const q = await qemuInfo(qcowImage.installPath, 'qcow2');
    assert.equal(inv.size, 512 * MiB);
    assert.equal(inv.size, q['virtual-size']);
    assert.equal(inv.actualSize, q['actual-size']);
    const raw = (await ok('PUT', `/images/${rawImage.uuid}/actions`, { syncImageSize: {} })).inventory;
    assert.equal(raw.size, (await qemuInfo(rawImage.installPath, 'raw'))['virtual-size']);
  });

  test('CalculateImageHash runs on the host, for every algorithm, = openssl dgst of the stored file', async () => {
    const { qcowImage, rawImage } = await images();
    for (const alg of DIGEST_ALGORITHMS) {
      const inv = (await ok('PUT', `/images/${qcowImage.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: alg } }))
        .inventory;
      assert.equal(inv.md5Sum, await opensslDigest(qcowImage.installPath, opensslName(alg)), alg);
    }
    const keyCopy = (await ok('GET', `/images/${rawImage.uuid}`)).inventories[0].backupStorageRefs.find(
      (r: any) => r.backupStorageUuid === keyBs,
    );
    const inv = (
      await ok('PUT', `/images/${rawImage.uuid}/actions`, { calculateImageHash: { backupStorageUuid: keyBs, algorithm: 'sha256' } })
    ).inventory;
    assert.equal(inv.md5Sum, await opensslDigest(keyCopy.installPath, 'sha256'));
  });

  test('UpdateSftpBackupStorage: a wrong password makes it Disconnected with a reason; the right one brings it back', async () => {
    let inv = (
      await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { updateSftpBackupStorage: { name: 'renamed', password: 'not-it-9876' } })
    ).inventory;
    assert.equal(inv.name, 'renamed');
    assert.equal(inv.status, 'Disconnected');
    assert.match(inv.statusReason, /was refused/);
    await failure(
      'PUT',
      `/backup-storage/sftp/${bs}/actions`,
      { reconnectSftpBackupStorage: {} },
      'BS.SFTP.1000',
      /cannot reconnect sftp backup storage.*refused/,
    );
    inv = (
      await ok('PUT', `/backup-storage/sftp/${bs}/actions`, {
        updateSftpBackupStorage: { password: PASSWORD_USER_PASSWORD, description: 'back' },
      })
    ).inventory;
    assert.equal(inv.status, 'Connected');
    assert.equal(inv.description, 'back');
    assert.equal(inv.hostKeyFingerprint, sshd.hostFingerprint, 'same host, same recorded key');
    // Switching the key storage to password login (the key is removed with "").
    inv = (
      await ok('PUT', `/backup-storage/sftp/${keyBs}/actions`, {
        updateSftpBackupStorage: { password: PASSWORD_USER_PASSWORD, privateKey: '' },
      })
    ).inventory;
    assert.equal(inv.status, 'Connected');
    await failure(
      'PUT',
      `/backup-storage/sftp/${keyBs}/actions`,
      { updateSftpBackupStorage: { password: '' } },
      'SYS.1007',
      /cannot be removed/,
    );
    const local = await userDir(path.join(work, 'local'));
    const localBs = await c.addLocalStorage(local, 'local');
    await failure(
      'PUT',
      `/backup-storage/sftp/${localBs.uuid}/actions`,
      { reconnectSftpBackupStorage: {} },
      'SYS.1003',
      /SftpBackupStorageVO/,
    );
    const r = await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { reconnectSftpBackupStorage: {} });
    assert.equal(r.inventory.status, 'Connected');
  });

  test('upload, export with Range, delete / recover / expunge on the SFTP storage', async () => {
    await checkLifecycleOn(c, bs, randomBytes(2 * MiB + 333), (p) =>
      fsp.access(p).then(
        () => true,
        () => false,
      ),
    );
  });

  test('cancel or timeout of a CalculateImageHash kills the process on the host', async () => {
    const rawImage = await addRawImage('cancel-raw', [bs]);
    // The stored copy becomes a large sparse file on the host: a long hash.
    await fsp.truncate(rawImage.installPath, 64 * 1024 ** 3);
    const location = await startHash(rawImage.uuid, bs, 'SHA512');
    const job = location.split('/').pop()!;
    await waitFor('hash progress', async () => (await progressOf(job))?.opaque?.bytesDone > 0);
    const cancel = await call('PUT', `/longjobs/${job}/actions`, { cancelLongJob: {} });
    assert.equal(cancel.status, 200, cancel.text);
    const res = await c.poll(location);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SYS.1017');
    await waitFor('no process reading the image on the host', async () => (await holdersOf(rawImage.installPath)).length === 0, 3000);

    // A timeout takes the same path: SYS.1001, and the remote reader is gone.
    const timed = await c.raw(
      'PUT',
      `/images/${rawImage.uuid}/actions`,
      { calculateImageHash: { backupStorageUuid: bs, algorithm: 'MD5' } },
      { 'X-API-Timeout': '1' },
    );
    assert.equal(timed.status, 202, timed.text);
    const end = await c.poll(timed.body.location);
    assert.equal(end.body.error.code, 'SYS.1001', end.text);
    await waitFor('no process reading the image after the timeout', async () => (await holdersOf(rawImage.installPath)).length === 0, 3000);
  });

  test('sshd stopped mid-hash: the job fails cleanly, the storage goes Disconnected, then Connected after sshd returns', async () => {
    const rawImage = await addRawImage('sshd-raw', [bs]);
    // The stored copy becomes a large sparse file on the host: a long hash, still running when sshd stops.
    await fsp.truncate(rawImage.installPath, 64 * 1024 ** 3);
    const location = await startHash(rawImage.uuid, bs, 'SHA256');
    const job = location.split('/').pop()!;
    await waitFor('hash progress', async () => (await progressOf(job))?.opaque?.bytesDone > 0);
    await sshd.stop();
    const res = await c.poll(location);
    answers.push(res.text);
    assert.equal(res.status, 503, res.text);
    assert.equal(res.body.error.code, 'SYS.1006');
    assert.match(res.body.error.details, /cannot hash image copy .* connection to zimage-sftp@127\.0\.0\.1:\d+ was lost/);
    await waitFor('the orphaned hash on the host to end', async () => (await holdersOf(rawImage.installPath)).length === 0);
    await waitFor('the ping to mark the storage Disconnected', async () => (await storage(bs)).status === 'Disconnected');
    assert.match((await storage(bs)).statusReason, /connection refused|was lost/);
    await failure('PUT', `/backup-storage/sftp/${bs}/actions`, { reconnectSftpBackupStorage: {} }, 'BS.SFTP.1000', /connection refused/);
    await sshd.start();
    const r = await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { reconnectSftpBackupStorage: {} });
    assert.equal(r.inventory.status, 'Connected');
    // Back to the real bytes: the copy hashes again.
    await fsp.writeFile(rawImage.installPath, rawBytes);
    const inv = (await ok('PUT', `/images/${rawImage.uuid}/actions`, { calculateImageHash: { backupStorageUuid: bs, algorithm: 'MD5' } }))
      .inventory;
    assert.equal(inv.md5Sum, await opensslDigest(rawImage.installPath, 'md5'));
  });

  test('directory removed on the host: Disconnected with the reason, Connected when it is back', async () => {
    const dir = await userDir(path.join(work, 'vanishing'));
    const add = await addSftp({ name: 'vanishing', password: PASSWORD_USER_PASSWORD, url: dir });
    answers.push(add.text);
    assert.equal(add.status, 200, add.text);
    const uuid = add.body.inventory.uuid;
    await fsp.rm(dir, { recursive: true });
    const err = await failure(
      'PUT',
      `/backup-storage/sftp/${uuid}/actions`,
      { reconnectSftpBackupStorage: {} },
      'BS.SFTP.1000',
      /does not exist on .*create it/,
    );
    assert.equal(err.cause.code, 'SYS.1006', 'SftpBackupStorage: RECONNECT_ERROR caused by the connect error');
    // The generic ReconnectBackupStorage passes the connect error on unchanged (BackupStorageBase).
    await failure('PUT', `/backup-storage/${uuid}/actions`, { reconnectBackupStorage: {} }, 'SYS.1006', /does not exist on .*create it/);
    assert.equal((await storage(uuid)).status, 'Disconnected');
    await userDir(dir);
    assert.equal(
      (await ok('PUT', `/backup-storage/sftp/${uuid}/actions`, { reconnectSftpBackupStorage: {} })).inventory.status,
      'Connected',
    );
  });

  test('disk full on the host: the add fails with the reason and leaves nothing', async (t) => {
    const small = await userDir(path.join(work, 'small'));
    const { uid, gid } = await testUserIds();
    try {
      await execFileP('mount', ['-t', 'tmpfs', '-o', `size=1m,uid=${uid},gid=${gid},mode=0755`, 'tmpfs', small]);
    } catch (err) {
      t.skip(`cannot mount a tmpfs here: ${(err as Error).message}`);
      return;
    }
    try {
      const add = await addSftp({ name: 'small', password: PASSWORD_USER_PASSWORD, url: small });
      assert.equal(add.status, 200, add.text);
      const uuid = add.body.inventory.uuid;
      http.addFile('big.raw', randomBytes(3 * MiB));
      // No Content-Length: the bytes flow until the host's disk is full.
      const res = await call('POST', '/images', {
        params: { name: 'too-big', url: http.url('/chunked/big.raw'), format: 'raw', backupStorageUuids: [uuid] },
      });
      assert.equal(res.status, 503, res.text);
      assert.match(res.body.error.details, /ran out of space|no space left/i);
      assert.deepEqual(
        (await fsp.readdir(small)).filter((n) => n !== 'images'),
        [],
      );
      assert.deepEqual(await fsp.readdir(path.join(small, 'images')).catch(() => []), [], 'no partial file left on the host');
      // With a Content-Length the add is refused up front.
      const early = await call('POST', '/images', {
        params: { name: 'too-big', url: http.url('/files/big.raw'), format: 'raw', backupStorageUuids: [uuid] },
      });
      assert.equal(early.status, 503, early.text);
      assert.match(early.body.error.details, /available|free/);
      await ok('DELETE', `/backup-storage/${uuid}`);
    } finally {
      await execFileP('umount', [small]);
    }
  });

  test('quoting attacks: a storage url and image name made of shell syntax stay names', async () => {
    const marker = path.join(work, 'PWNED');
    const dir = await userDir(path.join(work, `q'uo"te $(touch ${marker}); \`touch ${marker}\` && touch ${marker} -rf`));
    const add = await addSftp({ name: `$(touch ${marker})`, password: PASSWORD_USER_PASSWORD, url: dir });
    assert.equal(add.status, 200, add.text);
    const uuid = add.body.inventory.uuid;
    const bytes = randomBytes(2 * MiB);
    http.addFile('q.raw', bytes);
    const inv = await addImage({
      name: `'; touch ${marker}; echo '`,
      url: http.url('/files/q.raw'),
      format: 'raw',
      backupStorageUuids: [uuid],
    });
    const installPath = inv.backupStorageRefs[0].installPath;
    assert.ok(installPath.startsWith(`${dir}/images/`));
    assert.deepEqual(await fsp.readFile(installPath), bytes);
    assert.equal(
      (await ok('PUT', `/images/${inv.uuid}/actions`, { syncImageSize: {} })).inventory.size,
      (await qemuInfo(installPath, 'raw'))['virtual-size'],
    );
    const hashed = (await ok('PUT', `/images/${inv.uuid}/actions`, { calculateImageHash: { backupStorageUuid: uuid, algorithm: 'SHA1' } }))
      .inventory;
    assert.equal(hashed.md5Sum, await opensslDigest(installPath, 'sha1'));
    await assert.rejects(fsp.stat(marker), { code: 'ENOENT' }, 'nothing was executed');
  });

  test('host key changed: refused with both fingerprints; accepted only when told (resetHostKey)', async () => {
    const before = (await storage(bs)).hostKeyFingerprint;
    await sshd.stop();
    await sshd.start({ newHostKey: true });
    const err = await failure(
      'PUT',
      `/backup-storage/sftp/${bs}/actions`,
      { reconnectSftpBackupStorage: {} },
      'BS.SFTP.1000',
      /host key of 127\.0\.0\.1:\d+ has changed/,
    );
    assert.ok(err.details.includes(`expected ${before}`) && err.details.includes(`seen ${sshd.hostFingerprint}`), err.details);
    const inv = await storage(bs);
    assert.equal(inv.status, 'Disconnected');
    assert.equal(inv.hostKeyFingerprint, before, 'the recorded key is kept');
    const updated = (await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { updateSftpBackupStorage: { resetHostKey: true } })).inventory;
    assert.equal(updated.status, 'Connected');
    assert.equal(updated.hostKeyFingerprint, sshd.hostFingerprint);
    const pinned = (
      await ok('PUT', `/backup-storage/sftp/${keyBs}/actions`, { updateSftpBackupStorage: { hostKeyFingerprint: sshd.hostFingerprint } })
    ).inventory;
    assert.equal(pinned.status, 'Connected');
  });

  test('no password or private key in any answer or log line', async () => {
    // Its own calls carrying the wrong passwords, so that it checks them when run alone too; run with the other
    // tests it checks every answer and log line of the file (the shared storages carry the password and the key).
    const wrong = await addSftp({ name: 'secrets', password: 'wrong-password-1234', url: root + '/x' });
    assert.equal(wrong.status, 503, wrong.text);
    const off = (await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { updateSftpBackupStorage: { password: 'not-it-9876' } })).inventory;
    assert.equal(off.status, 'Disconnected');
    const on = (await ok('PUT', `/backup-storage/sftp/${bs}/actions`, { updateSftpBackupStorage: { password: PASSWORD_USER_PASSWORD } }))
      .inventory;
    assert.equal(on.status, 'Connected');
    const secrets = [PASSWORD_USER_PASSWORD, 'not-it-9876', 'wrong-password-1234', 'PRIVATE KEY', sshd.clientKey.split('\n')[1]!];
    assert.ok(logText.length > 0, 'the log was captured');
    for (const s of secrets) {
      for (const a of answers)
        assert.ok(!a.includes(s) && !a.includes(JSON.stringify(s).slice(1, -1)), `secret in an answer: ${a.slice(0, 300)}`);
      assert.ok(!logText.includes(s) && !logText.includes(JSON.stringify(s).slice(1, -1)), 'secret in the log');
    }
    const jobs = await app.db.db.selectFrom('api_job').select('result').execute();
    for (const j of jobs)
      for (const s of secrets) assert.ok(!(j.result ?? '').includes(JSON.stringify(s).slice(1, -1)), 'secret in a stored job result');
  });
});
