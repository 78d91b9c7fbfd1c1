import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { splitMonHost, type CephConfig, type CephMonState, type CephPoolState } from './config.js';

/** The helper's answer to `status` (rados_helper.py op_status); every sub-answer may be an error instead. */
export interface StatusAnswer {
  fsid: string;
  exists: boolean;
  quorum?: {
    quorum?: number[];
    error?: string;
    monmap?: { mons?: Array<{ rank: number; name: string; addr?: string; public_addrs?: { addrvec?: Array<{ addr: string }> } }> };
    errno?: number;
  };
  df?: {
    pools?: Array<{ name: string; stats: { stored?: number; bytes_used?: number; max_avail?: number } }>;
    errno?: number;
    error?: string;
  };
  size?: { size?: number; errno?: number; error?: string };
  quota?: { quota_max_bytes?: number; errno?: number; error?: string };
  stats?: { num_bytes?: number; errno?: number; error?: string };
  clusterStats?: { kb?: number; kb_avail?: number; errno?: number };
  probe?: { ok?: boolean; errno?: number; error?: string };
}

/** Pool numbers from a status answer (quota-aware), as stored in the inventory. */
export function poolState(st: StatusAnswer, poolName: string, full: boolean): CephPoolState & { usedCapacityLogical: number } {
  const dfPool = st.df?.pools?.find((p) => p.name === poolName)?.stats;
  const size = st.size?.size ?? 1;
  const stored = dfPool?.stored ?? st.stats?.num_bytes ?? 0;
  const bytesUsed = dfPool?.bytes_used ?? stored * size;
  let available = dfPool?.max_avail ?? Math.floor(((st.clusterStats?.kb_avail ?? 0) * 1024) / Math.max(1, size));
  const quota = st.quota?.quota_max_bytes ?? 0;
  if (quota > 0) {
    available = Math.min(available, Math.max(0, quota - stored));
    if (stored >= quota) full = true;
  }
  if (full) available = 0;
  return {
    availableCapacity: available,
    usedCapacity: bytesUsed,
    replicatedSize: size,
    ...(full ? { full } : {}),
    usedCapacityLogical: stored,
  };
}

/** The configured monitors with their status: in quorum (Connected) or not; all Disconnected when unreachable. */
export async function monStates(config: CephConfig, st: StatusAnswer | undefined): Promise<CephMonState[]> {
  const prev = config.mons ?? [];
  const out: CephMonState[] = [];
  for (const host of config.monUrls) {
    const { hostname, port, explicitPort } = splitMonHost(host);
    let status: CephMonState['status'] = 'Disconnected';
    if (st) {
      const q = st.quorum;
      if (!q || q.errno !== undefined || !q.monmap?.mons) {
        status = 'Connected'; // reached the cluster through them; no permission to read the quorum
      } else {
        let ips = [hostname];
        if (!isIP(hostname)) ips = (await lookup(hostname, { all: true }).catch(() => [])).map((a) => a.address).concat(hostname);
        const inQuorum = new Set(q.quorum ?? []);
        const match = q.monmap.mons.find((m) => {
          const addrs = (m.public_addrs?.addrvec ?? []).map((a) => a.addr).concat(m.addr ? [m.addr.replace(/\/\d+$/, '')] : []);
          return addrs.some((a) => {
            const { hostname: h, port: p } = splitMonHost(a);
            return ips.includes(h) && (!explicitPort || p === port);
          });
        });
        status = match && inQuorum.has(match.rank) ? 'Connected' : 'Disconnected';
      }
    }
    const old = prev.find((m) => m.monAddr === host);
    out.push({ ...(old?.uuid ? { uuid: old.uuid } : {}), monAddr: host, hostname, monPort: port, status });
  }
  return out;
}
