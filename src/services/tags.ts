import type { Db } from '../db/connect.js';
import type { TagTable } from '../db/schema.js';
import { zstackDate } from '../lib/dates.js';
import { INVENTORY_CLASS, withClass } from '../lib/inventory-class.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import { parseDigestAlgorithm } from '../hashing/algorithms.js';
import { omitNulls } from './inventory.js';
import { conditionsFor, type QueryTarget, sortColumn } from './query.js';
import { answerQuery, queryRequestOf } from './query-answer.js';
import { checkBootModeTags } from './boot-mode-tags.js';
import { checkGivenTags, onlyOneError } from './given-tags.js';
import { isKnownSystemTag, singleValuedName } from './system-tags.js';

/** Server-side classes of the inventories below, as the SDK's SourceClassMap names them. */
export const TAG_INVENTORY_CLASS = INVENTORY_CLASS.tag;
export const SYSTEM_TAG_INVENTORY_CLASS = INVENTORY_CLASS.systemTag;
export const USER_TAG_INVENTORY_CLASS = INVENTORY_CLASS.userTag;

/** The resources tags can be put on in zimage (ZStack's "managed entity names") and their tables. */
const RESOURCE_TABLES = { ImageVO: 'image', BackupStorageVO: 'backup_storage', ZoneVO: 'zone' } as const;
type TagKind = 'System' | 'User';

/** The fields of TagInventory (UserTagInventory has the same ones here: zimage has no tag patterns). */
function tagFields(t: TagTable): Record<string, unknown> {
  return omitNulls({
    uuid: t.uuid,
    resourceUuid: t.resource_uuid,
    resourceType: t.resource_type,
    tag: t.tag,
    type: t.type,
    createDate: zstackDate(t.create_date),
    lastOpDate: zstackDate(t.last_op_date ?? t.create_date),
  });
}

/** TagInventory, as QueryTag lists both kinds. */
export const tagInventory = (t: TagTable): Record<string, unknown> => withClass(TAG_INVENTORY_CLASS, tagFields(t));
export const userTagInventory = (t: TagTable): Record<string, unknown> => withClass(USER_TAG_INVENTORY_CLASS, tagFields(t));
/** SystemTagInventory: TagInventory and `inherent`. */
export const systemTagInventory = (t: TagTable): Record<string, unknown> =>
  withClass(SYSTEM_TAG_INVENTORY_CLASS, { ...tagFields(t), inherent: t.inherent === 1 });

const tagQuery = (kind?: TagKind): QueryTarget<'tag'> => ({
  table: 'tag',
  inventoryClass: kind === 'System' ? SYSTEM_TAG_INVENTORY_CLASS : kind === 'User' ? USER_TAG_INVENTORY_CLASS : TAG_INVENTORY_CLASS,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    resourceUuid: { column: 'resource_uuid', kind: 'string' },
    resourceType: { column: 'resource_type', kind: 'string' },
    tag: { column: 'tag', kind: 'string' },
    type: { column: 'type', kind: 'string' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
    ...(kind === 'System' ? { inherent: { column: 'inherent', kind: 'boolean' as const } } : {}),
  },
  nested: {},
});

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
    const wanted = [...systemTags.map((tag) => ({ tag, type: 'System' })), ...userTags.map((tag) => ({ tag, type: 'User' }))];
    if (!wanted.length) return;
    const existing = await this.db.selectFrom('tag').select(['tag', 'type']).where('resource_uuid', '=', resourceUuid).execute();
    const fresh = wanted.filter(
      (w, i) =>
        !existing.some((e) => e.tag === w.tag && e.type === w.type) && wanted.findIndex((x) => x.tag === w.tag && x.type === w.type) === i,
    );
    if (!fresh.length) return;
    const now = Date.now();
    await this.db
      .insertInto('tag')
      .values(
        fresh.map((t) => ({
          uuid: newUuid(),
          resource_uuid: resourceUuid,
          resource_type: resourceType,
          tag: t.tag,
          type: t.type,
          create_date: now,
          last_op_date: now,
        })),
      )
      .execute();
  }

  /** TagApiInterceptor's checks on the resource: a type the tag system knows, a uuid of that type. */
  private async checkResource(resourceType: string, resourceUuid: string): Promise<void> {
    const table = Object.hasOwn(RESOURCE_TABLES, resourceType) ? RESOURCE_TABLES[resourceType as keyof typeof RESOURCE_TABLES] : undefined;
    if (!table) throw new ZStackError('SYS.1007', `no resource type[${resourceType}] found in tag system`);
    const found = await this.db.selectFrom(table).select('uuid').where('uuid', '=', resourceUuid).executeTakeFirst();
    if (found) return;
    for (const other of Object.values(RESOURCE_TABLES)) {
      if (await this.db.selectFrom(other).select('uuid').where('uuid', '=', resourceUuid).executeTakeFirst()) {
        throw new ZStackError('SYS.1007', "The argument :'resourceType' doesn't match uuid");
      }
    }
    throw new ZStackError('SYS.1003', `invalid field[resourceUuid], resource[uuid:${resourceUuid}, type:ResourceVO] not found`);
  }

  private checkSystemTag(resourceType: string, tag: string): void {
    // zimage's checksum:: tags are not ZStack's: only AddImage takes (and verifies) them.
    if (!isKnownSystemTag(resourceType, tag)) {
      throw new ZStackError('SYS.1007', `no system tag matches[${tag}] for resourceType[${resourceType}]`);
    }
    // ImageSystemTags.BOOT_MODE's validator: the mode must be an ImageBootMode.
    if (resourceType === 'ImageVO') checkBootModeTags([tag]);
  }

  /** A single-valued system tag (bootMode::, sourceType::, …) the resource already carries with another value. */
  private async checkSingleValued(resourceUuid: string, resourceType: string, tags: readonly string[], exceptUuid?: string): Promise<void> {
    const names = new Map<string, string>();
    for (const tag of tags) {
      const name = singleValuedName(resourceType, tag);
      if (name !== undefined) names.set(name, tag);
    }
    if (!names.size) return;
    const existing = await this.db
      .selectFrom('tag')
      .select(['uuid', 'tag'])
      .where('resource_uuid', '=', resourceUuid)
      .where('type', '=', 'System')
      .execute();
    for (const [name, tag] of names) {
      const others = existing.filter((e) => e.uuid !== exceptUuid && e.tag !== tag && singleValuedName(resourceType, e.tag) === name);
      if (others.length) throw onlyOneError(name, others.length + 1);
    }
  }

  /**
   * Tags given with another call on a `resourceType` resource (uuid known when it exists already): the checks
   * of CreateSystemTag / CreateUserTag, before anything is stored or run.
   */
  async checkGiven(
    msgClass: string,
    resourceType: string,
    resourceUuid: string | undefined,
    systemTags: readonly string[],
    userTags: readonly string[],
  ): Promise<void> {
    checkGivenTags(msgClass, resourceType, systemTags, userTags);
    if (resourceUuid !== undefined) await this.checkSingleValued(resourceUuid, resourceType, systemTags);
  }

  private async find(resourceUuid: string, resourceType: string, tag: string, type: TagKind): Promise<TagTable | undefined> {
    return this.db
      .selectFrom('tag')
      .selectAll()
      .where('resource_uuid', '=', resourceUuid)
      .where('resource_type', '=', resourceType)
      .where('tag', '=', tag)
      .where('type', '=', type)
      .executeTakeFirst();
  }

  private async insert(resourceUuid: string, resourceType: string, tag: string, type: TagKind): Promise<TagTable> {
    const now = Date.now();
    const row: TagTable = {
      uuid: newUuid(),
      resource_uuid: resourceUuid,
      resource_type: resourceType,
      tag,
      type,
      create_date: now,
      last_op_date: now,
      inherent: 0,
    };
    await this.db.insertInto('tag').values(row).execute();
    return row;
  }

  /**
   * CreateSystemTag: a tag ZStack defines for the resource type, created non-inherent. A tag the resource
   * already carries is not created again and, as in ZStack, the reply then has no inventory.
   */
  async createSystemTag(p: { resourceType: string; resourceUuid: string; tag: string }): Promise<Record<string, unknown>> {
    await this.checkResource(p.resourceType, p.resourceUuid);
    this.checkSystemTag(p.resourceType, p.tag);
    if (await this.find(p.resourceUuid, p.resourceType, p.tag, 'System')) return {};
    await this.checkSingleValued(p.resourceUuid, p.resourceType, [p.tag]);
    return { inventory: systemTagInventory(await this.insert(p.resourceUuid, p.resourceType, p.tag, 'System')) };
  }

  /** CreateUserTag: any text; the same tag twice on a resource is ZStack's operr. */
  async createUserTag(p: { resourceType: string; resourceUuid: string; tag: string }): Promise<Record<string, unknown>> {
    await this.checkResource(p.resourceType, p.resourceUuid);
    if (await this.find(p.resourceUuid, p.resourceType, p.tag, 'User')) {
      throw new ZStackError(
        'SYS.1006',
        `Duplicated Tag[tag:${p.tag}, type:User, resourceType:${p.resourceType}, resourceUuid:${p.resourceUuid}]`,
      );
    }
    return { inventory: userTagInventory(await this.insert(p.resourceUuid, p.resourceType, p.tag, 'User')) };
  }

  /** UpdateSystemTag: the new text must still be a system tag of the resource's type. */
  async updateSystemTag(uuid: string, tag: string): Promise<Record<string, unknown>> {
    const row = await this.db.selectFrom('tag').selectAll().where('uuid', '=', uuid).where('type', '=', 'System').executeTakeFirst();
    if (!row) throw new ZStackError('SYS.1003', `invalid field[uuid], resource[uuid:${uuid}, type:SystemTagVO] not found`);
    this.checkSystemTag(row.resource_type, tag);
    if (row.tag === tag) return { inventory: systemTagInventory(row) };
    await this.checkSingleValued(row.resource_uuid, row.resource_type, [tag], row.uuid);
    const now = Date.now();
    await this.db.updateTable('tag').set({ tag, last_op_date: now }).where('uuid', '=', uuid).execute();
    return { inventory: systemTagInventory({ ...row, tag, last_op_date: now }) };
  }

  /** DeleteTag: an inherent system tag cannot be removed (operr); an unknown tag is already deleted. */
  async delete(uuid: string): Promise<void> {
    const row = await this.db.selectFrom('tag').select(['type', 'inherent']).where('uuid', '=', uuid).executeTakeFirst();
    if (!row) return;
    if (row.type === 'System' && row.inherent === 1) {
      throw new ZStackError('SYS.1006', `tag[uuid:${uuid}] is an inherent system tag, can not be removed`);
    }
    await this.db.deleteFrom('tag').where('uuid', '=', uuid).execute();
  }

  /** QuerySystemTag / QueryUserTag (one kind) or QueryTag (both, as TagInventory). */
  async query(kind: TagKind | undefined, rawQuery: Record<string, string | string[]>, uuid?: string): Promise<Record<string, unknown>> {
    const target = tagQuery(kind);
    const req = queryRequestOf(rawQuery, uuid);
    let base = this.db.selectFrom('tag').where((eb) => eb.and(conditionsFor(target, req.conditions, eb)));
    if (kind) base = base.where('type', '=', kind);
    const rows = () => {
      const all = base.selectAll();
      return req.sort
        ? all.orderBy(sortColumn(target, req.sort.field) as any, req.sort.direction)
        : all.orderBy('create_date').orderBy('uuid');
    };
    const build = kind === 'System' ? systemTagInventory : kind === 'User' ? userTagInventory : tagInventory;
    return answerQuery(base, req, rows, build, () => target.inventoryClass);
  }
}
