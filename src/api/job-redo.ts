import type { SessionTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { newUuid } from '../lib/ids.js';
import type { Redoer } from '../jobs/runner.js';
import type { Services } from '../services/index.js';
import { replySchema } from './json-schema.js';
import type { ApiContext, ApiDef } from './registry.js';
import { checkFields } from './validate.js';

/*
 * Jobs another node can redo when the node running them dies: work that can be done again from the
 * request alone, after rolling back what the dead node left. The request (parameters, tags, session,
 * addresses) is kept with the job, sealed with the SecretBox (an AddImage url may carry credentials).
 */
const REDOABLE = new Set([
  'SyncImageSize',
  'CalculateImageHash',
  'AddImage',
  'ExportImageFromBackupStorage',
  'DeleteExportedImageFromBackupStorage',
  'DeleteImage',
  'ExpungeImage',
]);

/** The call as kept with its job. */
export interface StoredCall {
  params: Record<string, unknown>;
  systemTags: string[];
  userTags: string[];
  baseUrl: string;
  clientAddress: string;
  session?: SessionTable;
  schema: boolean;
}

/** Whether the call can be redone from its request (an upload cannot: its client holds the bytes). */
export function isRedoable(def: ApiDef, params: Record<string, unknown>): boolean {
  if (!REDOABLE.has(def.name)) return false;
  if (def.name === 'AddImage') return typeof params.url === 'string' && !params.url.startsWith('upload://');
  return true;
}

/**
 * AddImage gets its image uuid now (unless the caller chose one): the job records it, so a node that takes
 * the job over removes exactly that image's partial bytes and rows and adds it again under the same uuid.
 */
export function pinResource(def: ApiDef, params: Record<string, unknown>): Record<string, unknown> {
  if (def.name === 'AddImage' && params.resourceUuid === undefined) return { ...params, resourceUuid: newUuid() };
  return params;
}

/** The resource a job acts on, as its row records it. */
export function resourceOf(params: Record<string, unknown>): string | undefined {
  for (const key of ['uuid', 'resourceUuid', 'imageUuid']) if (typeof params[key] === 'string') return params[key];
  return undefined;
}

/**
 * The node a job must run on: the owner of a local-directory storage it touches (its bytes are on that
 * node's disk only); undefined when any node can run it.
 */
export async function affinityOf(services: Services, params: Record<string, unknown>): Promise<string | undefined> {
  const uuids = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v === 'string') uuids.add(v);
    else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') uuids.add(x);
  };
  add(params.backupStorageUuids);
  add(params.backupStorageUuid);
  const image = typeof params.uuid === 'string' ? params.uuid : typeof params.imageUuid === 'string' ? params.imageUuid : undefined;
  if (image && uuids.size === 0) for (const ref of await services.images.refs(image)) uuids.add(ref.backup_storage_uuid);
  for (const uuid of uuids) {
    const row = await services.backupStorage.get(uuid);
    if (row?.owner_node) return row.owner_node;
  }
  return undefined;
}

/** Runs a call's handler: field checks, the handler, tags given with the call, the reply's schema map. */
export async function runCall(
  def: ApiDef,
  ctx: ApiContext,
  params: Record<string, unknown>,
  schema: boolean,
): Promise<Record<string, unknown>> {
  const checked = checkFields(def.params, def.msgClass, params);
  // Tags stored with this call pass CreateSystemTag's / CreateUserTag's checks first, before anything runs.
  if (def.resourceType && (ctx.systemTags.length || ctx.userTags.length)) {
    const named = (params.uuid as string | undefined) ?? (params.imageUuid as string | undefined);
    await ctx.services.tags.checkGiven(def.msgClass, def.resourceType, named, ctx.systemTags, ctx.userTags);
  }
  const result = await def.handler(ctx, checked);
  if (def.resourceType && (ctx.systemTags.length || ctx.userTags.length)) {
    const target =
      (result.inventory as { uuid?: string } | undefined)?.uuid ??
      (params.uuid as string | undefined) ??
      (params.imageUuid as string | undefined);
    if (target) await ctx.services.tags.attach(target, def.resourceType, ctx.systemTags, ctx.userTags);
  }
  return schema ? { ...result, schema: replySchema(result) } : result;
}

/** Rebuilds a taken-over job from its stored call: rolls back what the dead node left, then runs it again. */
export function makeRedoer(defs: readonly ApiDef[], services: Services): Redoer {
  const byName = new Map(defs.map((d) => [d.name, d]));
  return (apiName, request, info) => async (job) => {
    const def = byName.get(apiName);
    if (!def) throw new ZStackError('SYS.1006', `this node cannot redo ${apiName} (unknown API); retry the call`);
    const call = request as unknown as StoredCall;
    if (def.name === 'AddImage' && typeof call.params.resourceUuid === 'string') {
      // The dead node's partial bytes and rows of this image (its temporary names derive from the image uuid).
      await services.imageAdder.discardInterrupted(call.params.resourceUuid);
    }
    const ctx: ApiContext = {
      services,
      session: call.session,
      jobUuid: info.uuid,
      signal: job.signal,
      progress: job.progress,
      fence: job.fence,
      systemTags: call.systemTags,
      userTags: call.userTags,
      baseUrl: call.baseUrl,
      clientAddress: call.clientAddress,
      query: {},
    };
    return runCall(def, ctx, call.params, call.schema);
  };
}
