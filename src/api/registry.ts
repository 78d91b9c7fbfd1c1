import type { Static, TObject } from '@sinclair/typebox';
import type { Db } from '../db/connect.js';
import type { SessionTable } from '../db/schema.js';
import type { Services } from '../services/index.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a handler receives besides its parameters. */
export interface ApiContext {
  services: Services;
  /** The caller's session (undefined only for APIs declared with auth: false). */
  session?: SessionTable;
  /** The job uuid (= ZStack apiId); on sync APIs, a fresh id. */
  jobUuid: string;
  /** Fires on cancel or timeout. */
  signal: AbortSignal;
  progress(bytesDone: number, bytesTotal: number): void;
  /** Async APIs: call inside the transaction that commits the work; throws when another node took the job over. */
  fence?: (trx: Db) => Promise<void>;
  systemTags: string[];
  userTags: string[];
  /** The caller's IP address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy. */
  clientAddress: string;
  /** Base URL of this server as the client reached it, e.g. http://10.0.0.5:8080. */
  baseUrl: string;
  /** Raw query for query APIs (repeated keys as arrays). */
  query: Record<string, string | string[]>;
}

/**
 * One API, declared once: the dispatcher routes, authenticates, validates, runs it as a job, answers
 * and documents it (OpenAPI) from this declaration alone.
 */
export interface ApiDef<S extends TObject = TObject> {
  /** ZStack's API name, e.g. "SyncImageSize". */
  name: string;
  /** ZStack's message class, used in its error texts, e.g. "org.zstack.header.image.APISyncImageSizeMsg". */
  msgClass: string;
  method: HttpMethod;
  /** Path below /zstack/v1 with {vars}, e.g. "/images/{uuid}/actions". */
  path: string;
  /** For PUT actions: the body key (e.g. "syncImageSize"). POST reads "params". */
  actionKey?: string;
  /** On a PUT route: the API run when the body names no action at all (ZStack's seed example for SyncImageSize). */
  defaultAction?: boolean;
  mode: 'sync' | 'async';
  /** Default true: needs `Authorization: OAuth <session>`. */
  auth?: boolean;
  /**
   * Parameters (path variables included). Options `validValues`/`ignoreCase` on strings give ZStack's enum errors,
   * `validRegexValues` its regex error.
   */
  params: S;
  /** Job timeout (default: the configured 30 min). */
  timeoutMs?: number;
  /** Heavy jobs go through the concurrency limit; 'shared': the handler's shared work takes the slot (JobSpec.heavy). */
  heavy?: boolean | 'shared';
  /**
   * The resource the API creates or acts on (ZStack VO name). Tags given with the call are attached to it:
   * the path's uuid, or the `inventory.uuid` of the answer.
   */
  resourceType?: 'ImageVO' | 'BackupStorageVO' | 'ZoneVO';
  /**
   * Query APIs get the raw query string in ctx.query and skip parameter validation of `q`; their replies
   * always carry `schema` (others when asked with X-JSON-Schema), built from the reply by src/api/json-schema.ts.
   */
  query?: boolean;
  summary: string;
  handler(ctx: ApiContext, params: Static<S>): Promise<Record<string, unknown>>;
}

export const defineApi = <S extends TObject>(def: ApiDef<S>): ApiDef => def;
