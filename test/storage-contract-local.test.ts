/** The BackupStorageDriver contract (test/helpers/driver-contract.ts) on LocalBackupStorage, a directory. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { LocalDirectoryDriver } from '../src/storage/local/driver.js';
import { describeDriverContract } from './helpers/driver-contract.js';
import { tempDir } from './helpers/zimage.js';

describeDriverContract('local directory', async () => {
  const work = await tempDir('zimage-contract-local-');
  const root = path.join(work, 'bs');
  await fsp.mkdir(root);
  const driver = new LocalDirectoryDriver(root);
  return {
    driver,
    installPathOf: (uuid) => driver.installPathOf(uuid),
    storedNames: async (uuid) => fsp.readdir(path.join(root, 'images', uuid)).catch(() => []),
    outsidePaths: [root, path.join(work, 'elsewhere.img'), `${root}/../bs-sibling/x.img`, '/etc/passwd', 'relative/../../x'],
    close: async () => {
      await driver.close();
      await fsp.rm(work, { recursive: true, force: true });
    },
  };
});
