import { StorageError, ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import { type CephConfig, splitMonHost } from '../storage/ceph/config.js';
import { monHostOf, parseCephConfig } from '../storage/ceph/index.js';

/** What AddCephBackupStorage is given about the cluster (the secrets are stored sealed, never returned). */
export type CephSettingsParams = Pick<
  CephConfig,
  'monUrls' | 'poolName' | 'cephUser' | 'cephKey' | 'cephConf' | 'keyring' | 'timeoutSeconds'
>;

/** The stored settings of a new Ceph backup storage, after CephApiInterceptor's checks (with its texts); SYS.1007 if wrong. */
export function cephSettings(p: CephSettingsParams): Record<string, unknown> {
  if (p.poolName === '') throw new ZStackError('SYS.1007', 'poolName can be null but cannot be an empty string');
  try {
    const hosts = p.monUrls.map((u) => monHostOf(u));
    const seen = new Set<string>();
    for (const h of hosts) {
      const { hostname } = splitMonHost(h);
      if (seen.has(hostname)) throw new ZStackError('SYS.1007', `Cannot add same host[${hostname}] in mons`);
      seen.add(hostname);
    }
    const config: Record<string, unknown> = {
      monUrls: hosts,
      poolName: p.poolName,
      ...(p.cephUser ? { cephUser: p.cephUser } : {}),
      ...(p.cephKey ? { cephKey: p.cephKey } : {}),
      ...(p.cephConf ? { cephConf: p.cephConf } : {}),
      ...(p.keyring ? { keyring: p.keyring } : {}),
      ...(p.timeoutSeconds !== undefined ? { timeoutSeconds: p.timeoutSeconds } : {}),
      mons: hosts.map((h) => {
        const { hostname, port } = splitMonHost(h);
        return { uuid: newUuid(), monAddr: h, hostname, monPort: port, status: 'Disconnected' };
      }),
    };
    parseCephConfig(config);
    return config;
  } catch (err) {
    if (err instanceof StorageError) throw new ZStackError('SYS.1007', err.message);
    throw err;
  }
}
