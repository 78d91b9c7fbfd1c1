/**
 * The BackupStorageDriver contract (test/helpers/driver-contract.ts) on Ceph RBD, against a real one-node
 * Ceph cluster (test/helpers/ceph.ts, its own name and monitor port); what is stored is listed with `rbd ls`.
 */
import { shutdownHashPool } from '../src/hashing/pool.js';
import { CephDriver } from '../src/storage/ceph/driver.js';
import { startCephCluster } from './helpers/ceph.js';
import { describeDriverContract } from './helpers/driver-contract.js';

describeDriverContract('Ceph RBD', async () => {
  const cluster = await startCephCluster({ name: 'contract', monPort: 28300 });
  const driver = new CephDriver({
    uuid: 'bs-contract',
    url: 'ceph://rbd',
    config: { monUrls: [cluster.monUrl], poolName: 'rbd', timeoutSeconds: 10 },
    saveConfig: () => Promise.resolve(),
  });
  return {
    driver,
    installPathOf: (uuid) => driver.installPathOf(uuid),
    storedNames: async (uuid) =>
      (JSON.parse(await cluster.rbd(['ls', '-p', 'rbd', '--format', 'json'])) as string[]).filter((n) => n.startsWith(uuid)),
    outsidePaths: ['ceph://otherpool/x', '/etc/passwd', 'ceph://rbd/a/b', 'ceph://rbd/', 'rbd/x'],
    close: async () => {
      await driver.close();
      await shutdownHashPool();
      await cluster.stop();
    },
  };
});
