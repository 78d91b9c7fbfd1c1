import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { SessionTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { RestError } from './rest-error.js';
import { newUuid } from '../lib/ids.js';
import { MAX_TIMER_MS } from '../lib/timers.js';
import type { Services } from '../services/index.js';
import { accessKeySession } from './access-key-auth.js';
import { callInfo, type CallInfo } from './call-log.js';
import { clientAddressOf } from './client-address.js';
import type { ApiContext, ApiDef, HttpMethod } from './registry.js';
import { affinityOf, isRedoable, pinResource, resourceOf, runCall, type StoredCall } from './job-redo.js';
import { replySchema } from './json-schema.js';
import { checkFields, checkTypes } from './validate.js';

export const API_PREFIX = '/zstack/v1';

/** Path variables are normalised by position, as ZStack does: /images/{uuid} and /images/{imageUuid} are one route. */
const routeKey = (method: HttpMethod, path: string) => `${method} ${path.replace(/\{[^}]+\}/g, '{}')}`;
const fastifyPath = (path: string) => {
  let i = 0;
  return API_PREFIX + path.replace(/\{[^}]+\}/g, () => `:p${i++}`);
};
const pathVarNames = (path: string) => [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);

/** X-API-Timeout is in seconds, as in ZStack; at most 7 days. */
export const MAX_API_TIMEOUT_SEC = 7 * 24 * 3600;
const JOB_UUID_HEADER = /^[0-9a-fA-F]{32}$/;

const TAG_KEYS = new Set(['systemTags', 'userTags', 'requestIp']);

interface Route {
  method: HttpMethod;
  path: string;
  defs: ApiDef[];
}

/** Groups the declarations into routes: one Fastify route per (method, normalised path). */
export function groupRoutes(defs: readonly ApiDef[]): Route[] {
  const routes = new Map<string, Route>();
  for (const def of defs) {
    const key = routeKey(def.method, def.path);
    const route = routes.get(key) ?? { method: def.method, path: def.path, defs: [] };
    route.defs.push(def);
    routes.set(key, route);
  }
  return [...routes.values()];
}

/** Picks the API of a PUT route from the body's action key (exact match first, then case-insensitive). */
function pickAction(route: Route, body: Record<string, unknown>, urlPath: string): { def: ApiDef; key?: string } {
  const keys = Object.keys(body).filter((k) => !TAG_KEYS.has(k));
  const exact = route.defs.filter((d) => d.actionKey && keys.includes(d.actionKey));
  const loose = exact.length
    ? exact
    : route.defs.filter((d) => d.actionKey && keys.some((k) => k.toLowerCase() === d.actionKey!.toLowerCase()));
  if (loose.length > 1) {
    throw new RestError(
      400,
      `the body contains several actions [${loose.map((d) => d.actionKey).join(', ')}] for the URL[${urlPath}]; send exactly one`,
    );
  }
  if (loose.length === 1) {
    const def = loose[0]!;
    return { def, key: keys.find((k) => k.toLowerCase() === def.actionKey!.toLowerCase()) };
  }
  const fallback = route.defs.find((d) => d.defaultAction);
  if (keys.length === 0 && fallback) return { def: fallback };
  throw new RestError(400, `the body doesn't contain action mapping to the URL[${urlPath}]`);
}

const asStringList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** Decodes ZStack's query-string lists: repeated keys and indexed keys (a.0=x&a.1=y). */
function normaliseQuery(raw: Record<string, unknown>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const indexed = new Map<string, Array<[number, string]>>();
  for (const [k, v] of Object.entries(raw)) {
    const values = Array.isArray(v) ? v.map(String) : [String(v)];
    const m = /^(.+)\.(\d+)$/.exec(k);
    if (m) {
      const list = indexed.get(m[1]!) ?? [];
      for (const value of values) list.push([Number(m[2]), value]);
      indexed.set(m[1]!, list);
    } else {
      out[k] = values.length === 1 ? values[0]! : values;
    }
  }
  for (const [k, list] of indexed) out[k] = list.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  return out;
}

export interface DispatchDeps {
  services: Services;
  config: Config;
}

/** Registers every declared API on the Fastify instance. */
export function registerApis(app: FastifyInstance<any, any, any, any>, defs: readonly ApiDef[], deps: DispatchDeps): void {
  for (const route of groupRoutes(defs)) {
    app.route({
      method: route.method,
      url: fastifyPath(route.path),
      handler: (req, reply) => dispatch(route, req, reply, deps),
    });
  }
}

function baseUrlOf(req: FastifyRequest, config: Config): string {
  if (config.publicUrl) return config.publicUrl.replace(/\/+$/, '');
  return `${req.protocol}://${req.headers.host ?? `${config.host}:${config.port}`}`;
}

function sessionHeader(req: FastifyRequest): string {
  const header = req.headers.authorization;
  if (!header) throw new RestError(400, "missing header 'Authorization'");
  const [scheme, token] = header.trim().split(/\s+/, 2);
  if (scheme !== 'OAuth') throw new RestError(400, "Authorization type must be 'OAuth'");
  return token ?? '';
}

/** One API call as read from the request, checked up to authentication. */
interface Call {
  def: ApiDef;
  /** The parameters after the REST layer's type checks (field checks run with the handler). */
  typed: Record<string, unknown>;
  query: Record<string, string | string[]>;
  systemTags: string[];
  userTags: string[];
  clientAddress: string;
  /** The session of an access-key signed request (verified already). */
  signed?: SessionTable;
  /** The OAuth session token, when the API needs one and the request is not signed. */
  token?: string;
  jobUuid: string;
  /** The caller sent X-Job-UUID. */
  callerChoseId: boolean;
  timeoutMs: number;
  baseUrl: string;
  info: CallInfo;
}

/** The API a request calls and its parameters from the body: PUT by action key, POST under `params`. */
function readBody(route: Route, req: FastifyRequest): { def: ApiDef; payload: Record<string, unknown>; body: Record<string, unknown> } {
  const urlPath = decodeURIComponent(req.url.split('?')[0] ?? req.url);
  const body = (req.body ?? {}) as Record<string, unknown>;
  if (typeof body !== 'object' || Array.isArray(body)) throw new RestError(400, 'the request body must be a JSON object');
  if (route.method === 'PUT') {
    const picked = pickAction(route, body, urlPath);
    const inner = picked.key ? body[picked.key] : {};
    if (inner !== undefined && inner !== null && (typeof inner !== 'object' || Array.isArray(inner))) {
      throw new RestError(400, `the action [${picked.key}] must be a JSON object`);
    }
    return { def: picked.def, payload: { ...((inner as Record<string, unknown>) ?? {}) }, body };
  }
  if (route.method === 'POST') {
    const inner = body.params ?? {};
    if (typeof inner !== 'object' || Array.isArray(inner)) throw new RestError(400, 'the field [params] must be a JSON object');
    return { def: route.defs[0]!, payload: { ...(inner as Record<string, unknown>) }, body };
  }
  return { def: route.defs[0]!, payload: {}, body };
}

/** Adds the query (GET/DELETE) and path variables to the payload and takes the tags out of it. */
function gatherParams(
  route: Route,
  def: ApiDef,
  req: FastifyRequest,
  payload: Record<string, unknown>,
  body: Record<string, unknown>,
): Pick<Call, 'query' | 'systemTags' | 'userTags'> & { fromQuery: boolean } {
  const query = normaliseQuery((req.query ?? {}) as Record<string, unknown>);
  const fromQuery = route.method === 'GET' || route.method === 'DELETE';
  if (fromQuery && !def.query) Object.assign(payload, query);
  // Path variables win over the body.
  const pathParams = req.params as Record<string, string>;
  pathVarNames(def.path).forEach((name, i) => {
    payload[name] = pathParams[`p${i}`];
  });
  const systemTags = [...asStringList(body.systemTags), ...asStringList(payload.systemTags)];
  const userTags = [...asStringList(body.userTags), ...asStringList(payload.userTags)];
  if (fromQuery) {
    systemTags.push(...asStringList(query.systemTags === undefined ? [] : [query.systemTags].flat()));
    userTags.push(...asStringList(query.userTags === undefined ? [] : [query.userTags].flat()));
  }
  delete payload.systemTags;
  delete payload.userTags;
  return { query, fromQuery, systemTags, userTags };
}

/** X-Job-UUID and X-API-Timeout, checked (400 when malformed). */
function jobHeaders(req: FastifyRequest, def: ApiDef, config: Config): Pick<Call, 'jobUuid' | 'callerChoseId' | 'timeoutMs'> {
  const jobHeader = req.headers['x-job-uuid'];
  let jobUuid = newUuid();
  const callerChoseId = typeof jobHeader === 'string' && jobHeader !== '';
  if (callerChoseId) {
    // Stricter than ZStack's length check: the id becomes part of the polling URL's path.
    if (!JOB_UUID_HEADER.test(jobHeader)) throw new RestError(400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped");
    jobUuid = jobHeader;
  }
  const timeoutHeader = req.headers['x-api-timeout'];
  let timeoutMs = def.timeoutMs ?? config.defaultJobTimeoutMs;
  if (typeof timeoutHeader === 'string' && timeoutHeader !== '') {
    const seconds = /^\d{1,7}$/.test(timeoutHeader.trim()) ? Number(timeoutHeader.trim()) : NaN;
    if (!(seconds >= 1 && seconds <= MAX_API_TIMEOUT_SEC)) {
      throw new RestError(
        400,
        `Invalid header[X-API-Timeout], it must be a whole number of seconds from 1 to ${MAX_API_TIMEOUT_SEC} (7 days), but was [${timeoutHeader}]`,
      );
    }
    timeoutMs = seconds * 1000;
  }
  return { jobUuid, callerChoseId, timeoutMs };
}

/** Everything the REST layer checks before a call runs: body, parameters' types, credentials' form, headers. */
async function readCall(route: Route, req: FastifyRequest, { services, config }: DispatchDeps): Promise<Call> {
  const { def, payload, body } = readBody(route, req);
  const info = callInfo(req);
  info.api = def.name;
  const { fromQuery, ...params } = gatherParams(route, def, req, payload, body);
  const typed = checkTypes(def.params, payload, fromQuery);
  // Access-key signed requests (`Authorization: ZStack <id>:<signature>`) are verified here, before anything is stored or run.
  const clientAddress = clientAddressOf(req.socket.remoteAddress, req.headers['x-forwarded-for'], config.trustedProxies);
  info.client = clientAddress;
  const signed = def.auth === false ? undefined : await accessKeySession(req, services, clientAddress);
  const token = def.auth === false || signed ? undefined : sessionHeader(req);
  const job = jobHeaders(req, def, config);
  info.job = job.jobUuid;
  if (typeof typed.uuid === 'string') info.resource = typed.uuid;
  return { def, typed, ...params, clientAddress, signed, token, ...job, baseUrl: baseUrlOf(req, config), info };
}

/** The caller's session: the signed request's, or the OAuth token's (ID.1001 when invalid). */
async function authenticate(call: Call, services: Services): Promise<SessionTable | undefined> {
  const session = call.signed ?? (call.token === undefined ? undefined : await services.accounts.authenticate(call.token));
  call.info.account = session?.account_uuid;
  return session;
}

function apiContext(
  call: Call,
  services: Services,
  session: SessionTable | undefined,
  signal: AbortSignal,
  progress: ApiContext['progress'],
): ApiContext {
  const { jobUuid, systemTags, userTags, baseUrl, clientAddress, query } = call;
  return { services, session, jobUuid, signal, progress, systemTags, userTags, baseUrl, clientAddress, query };
}

/** As ZStack's RestServer.writeResponse: query replies always carry `schema`, others when the caller sends X-JSON-Schema. */
function withSchema(call: Call, req: FastifyRequest, result: Record<string, unknown>): Record<string, unknown> {
  return call.def.query || req.headers['x-json-schema'] !== undefined ? { ...result, schema: replySchema(result) } : result;
}

/** A sync API: run now, 200 with the result or 503 with the ZStack error. */
async function runSync(call: Call, req: FastifyRequest, reply: FastifyReply, services: Services): Promise<void> {
  try {
    const session = await authenticate(call, services);
    const params = checkFields(call.def.params, call.def.msgClass, call.typed);
    const result = await call.def.handler(
      apiContext(call, services, session, new AbortController().signal, () => {}),
      params,
    );
    reply.code(200).send(withSchema(call, req, result));
  } catch (err) {
    if (!(err instanceof ZStackError)) throw err;
    call.info.error = err;
    reply.code(503).send({ error: err.toBody() });
  }
}

/** An async API: a job; 200 with its result if it succeeds within the sync wait, else 202 with where to poll. */
async function runAsync(call: Call, req: FastifyRequest, reply: FastifyReply, { services, config }: DispatchDeps): Promise<void> {
  const { def, typed, jobUuid, timeoutMs, baseUrl } = call;
  const webHook = typeof req.headers['x-web-hook'] === 'string' && req.headers['x-web-hook'] !== '' ? req.headers['x-web-hook'] : undefined;
  if (webHook !== undefined && !/^https?:\/\/[^/]/i.test(webHook)) {
    throw new RestError(400, `Invalid header[X-Web-Hook], it must be an http:// or https:// URL, but was [${webHook}]`);
  }
  // Authenticate before anything is stored or run: a refused call leaves no row, starts no job, calls no
  // hook, yet answers as ZStack does (202, then 503 ID.1001 when polled).
  let session: SessionTable | undefined;
  try {
    session = await authenticate(call, services);
  } catch (err) {
    if (!(err instanceof ZStackError)) throw err;
    call.info.code = err.code;
    const refused = services.jobs.refuse(def.name, call.callerChoseId ? jobUuid : undefined);
    reply.code(202).send({ location: `${baseUrl}${API_PREFIX}/api-jobs/${refused}`, apiTimeout: timeoutMs });
    return;
  }
  if (call.callerChoseId && (await services.jobs.exists(jobUuid))) {
    throw new RestError(400, `Duplicate job uuid[${jobUuid}]`);
  }
  // A call that can be redone is kept with its job: another node redoes it if this one dies (src/api/job-redo.ts).
  const params = pinResource(def, typed);
  const schema = def.query === true || req.headers['x-json-schema'] !== undefined;
  const request: StoredCall | undefined = isRedoable(def, params)
    ? { params, systemTags: call.systemTags, userTags: call.userTags, baseUrl, clientAddress: call.clientAddress, session, schema }
    : undefined;
  const { finished } = await services.jobs.start({
    uuid: jobUuid,
    apiName: def.name,
    timeoutMs,
    heavy: def.heavy ?? false,
    webHook,
    resourceUuid: resourceOf(params),
    request: request as Record<string, unknown> | undefined,
    affinityNode: request ? await affinityOf(services, params) : undefined,
    watchMs: config.syncWaitMs,
    run: (job) => runCall(def, { ...apiContext(call, services, session, job.signal, job.progress), fence: job.fence }, params, schema),
  });
  const wait = new AbortController();
  const early = await Promise.race([
    finished,
    sleep(Math.min(config.syncWaitMs, MAX_TIMER_MS), undefined, { signal: wait.signal }).catch(() => undefined),
  ]);
  wait.abort();
  if (early && !early.ok) call.info.code = early.error.code;
  if (early?.ok) {
    reply.code(200).send(early.body);
  } else {
    // Failures always go through the job (202, then 503 on polling), so the stock SDKs read a structured error.
    reply.code(202).send({ location: `${baseUrl}${API_PREFIX}/api-jobs/${jobUuid}`, apiTimeout: timeoutMs });
  }
}

async function dispatch(route: Route, req: FastifyRequest, reply: FastifyReply, deps: DispatchDeps): Promise<void> {
  const call = await readCall(route, req, deps);
  if (call.def.mode === 'sync') await runSync(call, req, reply, deps.services);
  else await runAsync(call, req, reply, deps);
}
