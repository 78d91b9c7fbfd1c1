import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { StorageError } from '../../lib/errors.js';
import { splitMonHost, type CephConfig, type CephMonState, type CephPoolState } from './config.js';
import { cephError, ERRNO, type CephErrorContext } from './errors.js';
import { HelperError } from './helper.js';

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

/** What judging a status answer needs from the driver. */
export interface StatusJudgement {
  pool: string;
  /** The cluster the storage was added on, if known. */
  fsid?: string;
  what: string;
  errCtx: CephErrorContext;
  fail(err: unknown): StorageError;
}

/**
 * Refuses a status answer that shows an unreachable cluster, another cluster, a missing pool or a pool that
 * cannot be written; returns whether the pool is full (quota or space).
 */
export function judgeStatus(st: StatusAnswer, o: StatusJudgement): boolean {
  // Sub-answers are optional (a restricted key may not read them), but a timeout in any of them means
  // the cluster is not answering, even if librados still has maps cached from before.
  for (const part of [st.quorum, st.df, st.size, st.quota, st.stats, st.probe]) {
    const n = part?.errno;
    if (n === ERRNO.ETIMEDOUT || n === ERRNO.ECONNREFUSED || n === ERRNO.ESHUTDOWN) {
      throw o.fail(new HelperError(n, (part as { error?: string }).error ?? ''));
    }
  }
  if (o.fsid && st.fsid !== o.fsid) {
    throw new StorageError(
      'invalid',
      `${o.what}: the monitors belong to Ceph cluster ${st.fsid}, but this backup storage was added on cluster ${o.fsid}; fix monUrls.`,
    );
  }
  if (!st.exists) {
    throw new StorageError(
      'not-found',
      `${o.what}: pool "${o.pool}" does not exist on Ceph cluster ${st.fsid}; create it (ceph osd pool create ${o.pool} && rbd pool init ${o.pool}) or fix poolName.`,
    );
  }
  let full = false;
  if (st.probe?.errno !== undefined) {
    const n = st.probe.errno;
    if (n === ERRNO.EDQUOT || n === ERRNO.ENOSPC) full = true;
    else if (n === ERRNO.EPERM || n === ERRNO.EACCES) {
      throw cephError(n, `cannot write to pool "${o.pool}"`, o.errCtx);
    } else throw cephError(n, st.probe.error ?? '', o.errCtx);
  }
  return full;
}
