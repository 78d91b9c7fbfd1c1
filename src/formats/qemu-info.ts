/**
 * Shapes an InspectResult like `qemu-img info --output=json` where the fields overlap, plus a `zimage` key
 * with the detected format and the safety verdict. Pure.
 */
import type { InspectResult } from './inspect.js';
import { qemuFormatName } from './inspect.js';

export interface QemuImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'cluster-size'?: number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  encrypted?: boolean;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  zimage: {
    format: InspectResult['format'];
    details: Record<string, unknown>;
    safety: InspectResult['safety'];
    bytesRead: number;
  };
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function formatSpecific(r: InspectResult): QemuImgInfo['format-specific'] {
  const d = r.details;
  switch (r.format) {
    case 'qcow2': {
      const data: Record<string, unknown> = {
        compat: d.compat,
        'compression-type': d.compressionType,
        'refcount-bits': d.refcountBits,
      };
      if (d.version === 3) {
        data['lazy-refcounts'] = d.lazyRefcounts;
        data.corrupt = d.corrupt;
        data['extended-l2'] = d.extendedL2;
        if (d.dataFile !== undefined) data['data-file'] = d.dataFile;
        if (d.dataFileRaw !== undefined) data['data-file-raw'] = d.dataFileRaw;
      }
      return { type: 'qcow2', data };
    }
    case 'vmdk': {
      const data: Record<string, unknown> = {};
      const cid = str(d.cid);
      const parent = str(d.parentCid);
      if (cid && /^[0-9a-f]{1,8}$/i.test(cid)) data.cid = parseInt(cid, 16);
      if (parent && /^[0-9a-f]{1,8}$/i.test(parent)) data['parent-cid'] = parseInt(parent, 16);
      if (d.createType !== undefined) data['create-type'] = d.createType;
      return { type: 'vmdk', data };
    }
    case 'luks': {
      if (d.version !== 1) return undefined;
      // The header's "xts-plain64" is qemu's cipher-mode "xts" + ivgen-alg "plain64"; XTS keys are doubled.
      const [mode, ivgen] = (str(d.cipherMode) ?? '').split('-', 2);
      const keyBytes = num(d.keyBytes);
      const cipher = str(d.cipherName);
      const bits = keyBytes === undefined ? undefined : mode === 'xts' ? keyBytes * 4 : keyBytes * 8;
      return {
        type: 'luks',
        data: {
          'cipher-alg': cipher !== undefined && bits !== undefined ? `${cipher}-${bits}` : undefined,
          'cipher-mode': mode,
          'ivgen-alg': ivgen,
          'hash-alg': d.hashSpec,
          uuid: d.uuid,
          'payload-offset': d.payloadOffset,
        },
      };
    }
    default:
      return undefined;
  }
}

/**
 * `filename` is reported as given; `actualSize` (st_blocks × 512, which only the caller can stat) is
 * included when passed.
 */
export function toQemuImgInfo(result: InspectResult, filename: string, actualSize?: number): QemuImgInfo {
  const d = result.details;
  const info: QemuImgInfo = {
    filename,
    format: qemuFormatName(result.format),
    'virtual-size': result.virtualSize,
    zimage: { format: result.format, details: d, safety: result.safety, bytesRead: result.bytesRead },
  };
  if (actualSize !== undefined) info['actual-size'] = actualSize;
  const cluster = num(d.clusterSize);
  const clusterFormats = ['qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'qed'];
  if (cluster !== undefined && cluster > 0 && clusterFormats.includes(result.format)) info['cluster-size'] = cluster;
  if (result.format === 'qcow2' && str(d.backingFile) !== undefined) {
    info['backing-filename'] = d.backingFile as string;
    if (str(d.backingFileFormat) !== undefined) info['backing-filename-format'] = d.backingFileFormat as string;
  }
  if ((result.format === 'qcow2' && d.encrypted === true) || result.format === 'luks') info.encrypted = true;
  const fs = formatSpecific(result);
  if (fs) {
    for (const k of Object.keys(fs.data)) if (fs.data[k] === undefined) delete fs.data[k];
    info['format-specific'] = fs;
  }
  return info;
}
