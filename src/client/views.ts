import { bytes, fields, table } from './format.js';

/** How images, storages and jobs read on a terminal (--json prints the inventories instead). */
export function imageTable(images: any[]): string {
  return table(
    ['UUID', 'NAME', 'FORMAT', 'STATUS', 'STATE', 'SIZE', 'ACTUAL SIZE'],
    images.map((i) => [
      i.uuid,
      i.name,
      i.format,
      i.status,
      i.state,
      i.size === undefined ? undefined : bytes(i.size),
      i.actualSize === undefined ? undefined : bytes(i.actualSize),
    ]),
  );
}

export function imageDetails(i: any, digests: any[] = []): string {
  const out = [
    fields([
      ['uuid', i.uuid],
      ['name', i.name],
      ['description', i.description],
      ['status', i.status],
      ['state', i.state],
      ['format', i.format],
      ['size', i.size === undefined ? undefined : `${bytes(i.size)} (${i.size} bytes)`],
      ['actual size', i.actualSize === undefined ? undefined : `${bytes(i.actualSize)} (${i.actualSize} bytes)`],
      ['md5Sum', i.md5Sum],
      ['media type', i.mediaType],
      ['platform', i.platform],
      ['architecture', i.architecture],
      ['url', i.url],
      ['created', i.createDate],
    ]),
  ];
  const refs: any[] = i.backupStorageRefs ?? [];
  if (refs.length) {
    const exported = refs.some((r) => r.exportUrl);
    const head = ['BACKUP STORAGE', 'STATUS', 'INSTALL PATH', ...(exported ? ['EXPORT URL'] : [])];
    out.push(
      '',
      table(
        head,
        refs.map((r) => [r.backupStorageUuid, r.status, r.installPath, ...(exported ? [r.exportUrl] : [])]),
      ),
    );
  }
  if (digests.length) {
    out.push(
      '',
      table(
        ['ALGORITHM', 'DIGEST', 'BACKUP STORAGE', 'SOURCE'],
        digests.map((d) => [d.algorithm, d.digest, d.backupStorageUuid, d.source]),
      ),
    );
  }
  return out.join('\n');
}

export function storageTable(storages: any[]): string {
  return table(
    ['UUID', 'NAME', 'TYPE', 'STATUS', 'STATE', 'AVAILABLE', 'TOTAL', 'URL'],
    storages.map((s) => [s.uuid, s.name, s.type, s.status, s.state, bytes(s.availableCapacity), bytes(s.totalCapacity), s.url]),
  );
}

export function storageDetails(s: any): string {
  const mons: any[] = s.mons ?? [];
  return fields([
    ['uuid', s.uuid],
    ['name', s.name],
    ['description', s.description],
    ['type', s.type],
    ['status', s.status],
    ['status reason', s.statusReason],
    ['state', s.state],
    ['url', s.url],
    ['hostname', s.hostname],
    ['ssh port', s.sshPort],
    ['username', s.username],
    ['pool', s.poolName],
    ['fsid', s.fsid],
    ['monitors', mons.length ? mons.map((m) => `${m.hostname}:${m.monPort ?? 6789}`).join(', ') : undefined],
    ['available', s.availableCapacity === undefined ? undefined : `${bytes(s.availableCapacity)} (${s.availableCapacity} bytes)`],
    ['total', s.totalCapacity === undefined ? undefined : `${bytes(s.totalCapacity)} (${s.totalCapacity} bytes)`],
    ['created', s.createDate],
  ]);
}
