/**
 * The BackupStorageDriver contract (test/helpers/driver-contract.ts) on SftpBackupStorage, against a real
 * OpenSSH sshd on 127.0.0.1 (test/helpers/sshd.ts): the storage directory is on this machine, so what is
 * stored is read from the file system directly.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { SftpDriver } from '../src/storage/sftp/driver.js';
import { describeDriverContract } from './helpers/driver-contract.js';
import { PASSWORD_USER, startSshd, userDir } from './helpers/sshd.js';
import { tempDir } from './helpers/zimage.js';

describeDriverContract('SFTP', async () => {
  const sshd = await startSshd();
  const work = await tempDir('zimage-contract-sftp-');
  await fsp.chmod(work, 0o755);
  const root = await userDir(path.join(work, 'bs'));
  const config: Record<string, unknown> = {
    hostname: '127.0.0.1',
    sshPort: sshd.port,
    username: PASSWORD_USER,
    privateKey: sshd.clientKey,
  };
  const driver = new SftpDriver({
    uuid: 'bs',
    url: root,
    config,
    saveConfig: (patch) => Promise.resolve(void Object.assign(config, patch)),
  });
  return {
    driver,
    installPathOf: (uuid) => driver.installPathOf(uuid),
    storedNames: async (uuid) => fsp.readdir(path.join(root, 'images', uuid)).catch(() => []),
    outsidePaths: [root, path.join(work, 'elsewhere.img'), `${root}/../bs-sibling/x.img`, '/etc/passwd', 'relative/../../x'],
    close: async () => {
      await driver.close();
      await sshd.close();
      await fsp.rm(work, { recursive: true, force: true });
    },
  };
});
