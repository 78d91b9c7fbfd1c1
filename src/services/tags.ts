import type { Db } from '../db/connect.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import { parseDigestAlgorithm } from '../hashing/algorithms.js';

const HEX_LENGTH: Record<string, number> = { MD5: 32, SHA1: 40, SHA256: 64, SHA512: 128, SM3: 64 };

/**
 * Expected digests given by the caller of AddImage as system tags `checksum::<algorithm>::<hex>`
 * (e.g. `checksum::sha256::9f86d0…`). A mismatch fails the add and removes the bytes.
 */
export function expectedChecksums(systemTags: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const tag of systemTags) {
    const m = /^checksum::([^:]+)::(.*)$/i.exec(tag);
    if (!m) continue;
    const alg = parseDigestAlgorithm(m[1]!);
    const hex = m[2]!.trim().toLowerCase();
    if (!alg || !['MD5', 'SHA256'].includes(alg)) {
      throw new ZStackError('SYS.1007', `system tag[${tag}]: AddImage verifies checksum::md5::<hex> and checksum::sha256::<hex> only`);
    }
    if (!new RegExp(`^[0-9a-f]{${HEX_LENGTH[alg]}}$`).test(hex)) {
      throw new ZStackError('SYS.1007', `system tag[${tag}]: a ${alg} digest is ${HEX_LENGTH[alg]} hex digits`);
    }
    out.set(alg, hex);
  }
  return out;
}

/** System and user tags attached to resources (queryable with __systemTag__ / __userTag__). */
export class TagStore {
  constructor(private readonly db: Db) {}

  /** Attaches tags to a resource; a tag it already carries is not added twice. */
  async attach(resourceUuid: string, resourceType: string, systemTags: readonly string[], userTags: readonly string[]): Promise<void> {
    const wanted = [
      ...systemTags.map((tag) => ({ tag, type: 'System' })),
      ...userTags.map((tag) => ({ tag, type: 'User' })),
    ];
    if (!wanted.length) return;
    const existing = await this.db.selectFrom('tag').select(['tag', 'type']).where('resource_uuid', '=', resourceUuid).execute();
    const fresh = wanted.filter((w, i) => !existing.some((e) => e.tag === w.tag && e.type === w.type) && wanted.findIndex((x) => x.tag === w.tag && x.type === w.type) === i);
    if (!fresh.length) return;
    const now = Date.now();
    await this.db
      .insertInto('tag')
      .values(fresh.map((t) => ({ uuid: newUuid(), resource_uuid: resourceUuid, resource_type: resourceType, tag: t.tag, type: t.type, create_date: now })))
      .execute();
  }
}
