import { ApiError, UsageError } from './errors.js';
import { isUuid } from './context.js';
import type { ApiClient } from './http.js';

/** An image given by uuid or by (unique) name. */
export async function resolveImage(client: ApiClient, ref: string): Promise<any> {
  const body = isUuid(ref)
    ? await client.sync('GET', `/images/${ref}`)
    : await client.sync('GET', '/images', { query: { q: `name=${ref}` } });
  const found: any[] = body.inventories ?? [];
  if (found.length === 0) throw new ApiError(0, `no image ${isUuid(ref) ? 'with uuid' : 'named'} ${ref}; see: zimage image list`);
  if (found.length > 1)
    throw new UsageError(`${found.length} images are named ${ref}; give one uuid: ${found.map((i) => i.uuid).join(', ')}`);
  return found[0];
}

/** A backup storage given by uuid or by (unique) name. */
export async function resolveStorage(client: ApiClient, ref: string): Promise<any> {
  const body = isUuid(ref)
    ? await client.sync('GET', `/backup-storage/${ref}`)
    : await client.sync('GET', '/backup-storage', { query: { q: `name=${ref}` } });
  const found: any[] = body.inventories ?? [];
  if (found.length === 0)
    throw new ApiError(0, `no backup storage ${isUuid(ref) ? 'with uuid' : 'named'} ${ref}; see: zimage storage list`);
  if (found.length > 1)
    throw new UsageError(`${found.length} backup storages are named ${ref}; give one uuid: ${found.map((s) => s.uuid).join(', ')}`);
  return found[0];
}

/** The storages a new image goes to: those named, else the only one that can take it. */
export async function targetStorages(client: ApiClient, refs: string[] | undefined): Promise<string[]> {
  if (refs && refs.length) return Promise.all(refs.map(async (r) => (await resolveStorage(client, r)).uuid as string));
  const candidates: any[] = (await client.sync('GET', '/images/candidate-backup-storage')).inventories ?? [];
  if (candidates.length === 1) return [candidates[0].uuid];
  if (candidates.length === 0)
    throw new ApiError(
      0,
      'no backup storage can take an image now (none Enabled, Connected, with free space); add one: zimage storage add local NAME --url DIR',
    );
  throw new UsageError(
    `several backup storages can take the image; choose with --storage: ${candidates.map((c) => `${c.name} (${c.uuid})`).join(', ')}`,
  );
}

/** The storage holding an image's copy: the one named, else its first Ready copy's. */
export function copyStorage(image: any, storage: string | undefined, client: ApiClient): Promise<string> | string {
  if (storage) return resolveStorage(client, storage).then((s) => s.uuid as string);
  const ref = (image.backupStorageRefs ?? []).find((r: any) => r.status === 'Ready') ?? image.backupStorageRefs?.[0];
  if (!ref) throw new ApiError(0, `image ${image.uuid} has no copy on any backup storage`);
  return ref.backupStorageUuid as string;
}
