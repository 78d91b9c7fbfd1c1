import type { TSchema } from '@sinclair/typebox';
import { VERSION } from '../version.js';
import { API_PREFIX, groupRoutes, MAX_API_TIMEOUT_SEC } from './dispatcher.js';
import { SEED_EXAMPLES } from './openapi-examples.js';
import { EXTRA_TAGS, extraPaths } from './openapi-extra-paths.js';
import { COMPONENT_SCHEMAS, replyOf, SECURITY_SCHEMES } from './openapi-schemas.js';
import type { ApiDef } from './registry.js';

/*
 * The OpenAPI 3.1 document, generated from the same declarations the dispatcher serves. One operation per
 * path and method: where several APIs share one (the PUT .../actions routes), the request body is a `oneOf`
 * with one schema per API, titled with its name, and the operation's description lists them all.
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const TAGS_LIST: Schema = { type: 'array', items: { type: 'string' } };
const TAG_FIELDS: Record<string, Schema> = {
  systemTags: { ...TAGS_LIST, description: 'System tags to attach to the resource' },
  userTags: { ...TAGS_LIST, description: 'User tags to attach to the resource' },
};
/** ZStack's query parameters of the Query* APIs. */
const QUERY_PARAMS: Schema[] = [
  {
    name: 'q',
    in: 'query',
    description:
      'Condition `field<op>value` (ops: =, !=, >, <, >=, <=, ?= in, !?= not in, ~= like, !~= not like, is null, not null); repeat for AND',
    schema: TAGS_LIST,
    style: 'form',
    explode: true,
  },
  { name: 'limit', in: 'query', description: 'At most this many results', schema: { type: 'integer', minimum: 0, default: 1000 } },
  { name: 'start', in: 'query', description: 'Skip this many results', schema: { type: 'integer', minimum: 0, default: 0 } },
  { name: 'count', in: 'query', description: 'Only count: the reply is `{"total": n}`', schema: { type: 'boolean', default: false } },
  { name: 'replyWithCount', in: 'query', description: 'Add `total` to the reply', schema: { type: 'boolean', default: false } },
  { name: 'sort', in: 'query', description: '`+field` or `-field`', schema: { type: 'string' } },
  { name: 'fields', in: 'query', description: 'Only these fields of each inventory', schema: TAGS_LIST, style: 'form', explode: false },
];
const ASYNC_HEADERS: Schema[] = [
  {
    name: 'X-Job-UUID',
    in: 'header',
    required: false,
    description: 'Choose the job uuid (32 hex digits, no dashes)',
    schema: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
  },
  {
    name: 'X-API-Timeout',
    in: 'header',
    required: false,
    description: 'Job timeout in seconds',
    schema: { type: 'integer', minimum: 1, maximum: MAX_API_TIMEOUT_SEC },
  },
  {
    name: 'X-Web-Hook',
    in: 'header',
    required: false,
    description: "http(s) URL POSTed the job's result when it ends",
    schema: { type: 'string', format: 'uri' },
  },
];

/** Descriptions are CommonMark: `<mode>` in a summary would be read as an HTML tag. */
const md = (text: string): string => text.replace(/</g, '\\<');

const pathVars = (path: string): string[] => [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);

/** A TypeBox parameter schema as plain JSON Schema: ZStack's `validValues` become `enum`, `validRegexValues` `pattern`. */
export function paramSchema(prop: TSchema): Schema {
  const out = JSON.parse(JSON.stringify(prop)) as Schema;
  const notes: string[] = [];
  if (Array.isArray(out.validValues)) {
    out.enum = out.validValues;
    if (out.ignoreCase) notes.push('case-insensitive');
  }
  if (typeof out.validRegexValues === 'string') out.pattern = out.validRegexValues;
  delete out.validValues;
  delete out.ignoreCase;
  delete out.validRegexValues;
  if (notes.length) out.description = [out.description, notes.join('; ')].filter(Boolean).join('; ');
  return out;
}

/** The body parameters of one API (path variables excluded) as an object schema. */
function bodyParams(def: ApiDef): Schema {
  const vars = pathVars(def.path);
  const properties = Object.fromEntries(
    Object.entries(def.params.properties as Record<string, TSchema>)
      .filter(([k]) => !vars.includes(k))
      .map(([k, v]) => [k, paramSchema(v)]),
  );
  const required = (def.params.required ?? []).filter((k: string) => !vars.includes(k));
  return { type: 'object', properties, ...(required.length ? { required } : {}) };
}

/** One line per parameter: name, required, valid values, default, limits. */
function describeParams(def: ApiDef): string {
  const vars = pathVars(def.path);
  const required = new Set(def.params.required ?? []);
  const lines = Object.entries(def.params.properties as Record<string, TSchema>)
    .filter(([k]) => !vars.includes(k))
    .map(([k, raw]) => {
      // The JSON-schema keywords a parameter's description shows, with the types TypeBox gives them.
      const p = paramSchema(raw) as Schema & { type?: string; maxLength?: number; minimum?: number; maximum?: number; pattern?: string };
      const facts = [required.has(k) ? 'required' : 'optional', String(p.type ?? 'any')];
      if (Array.isArray(p.enum)) facts.push(`one of ${p.enum.join(', ')}${raw.ignoreCase ? ' (any case)' : ''}`);
      if (p.default !== undefined) facts.push(`default ${JSON.stringify(p.default)}`);
      if (p.maxLength !== undefined) facts.push(`at most ${p.maxLength} characters`);
      if (p.minimum !== undefined || p.maximum !== undefined) facts.push(`range [${p.minimum ?? ''}, ${p.maximum ?? ''}]`);
      if (p.pattern !== undefined) facts.push(`matching ${p.pattern}`);
      return `\`${k}\` (${facts.join(', ')})`;
    });
  return lines.length ? lines.join('; ') : 'no parameters';
}

const modeText = (def: ApiDef): string =>
  def.mode === 'async' ? 'Asynchronous: 200 when done within the wait window, else 202 + poll `location`.' : 'Synchronous.';

/** The body of an example request: the action key with the required parameters as `<placeholders>` and defaults. */
function exampleBody(def: ApiDef): Record<string, unknown> {
  const params = bodyParams(def);
  const required = new Set((params.required as string[] | undefined) ?? []);
  const inner: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(params.properties as Record<string, Schema>)) {
    if (required.has(k)) inner[k] = p.default ?? (Array.isArray(p.enum) ? p.enum[0] : p.type === 'array' ? [`<${k}>`] : `<${k}>`);
    else if (p.default !== undefined) inner[k] = p.default;
  }
  return def.method === 'POST' ? { params: inner } : { [def.actionKey!]: inner };
}

/** The request body schema of one API: `{"<actionKey>": {...}}` for PUT, `{"params": {...}}` for POST. */
function bodySchema(def: ApiDef): Schema {
  const key = def.method === 'POST' ? 'params' : def.actionKey!;
  const params = bodyParams(def);
  const hasRequired = Array.isArray(params.required) && params.required.length > 0;
  const schema: Schema = {
    title: def.name,
    description: `${md(def.summary)}\n\n${modeText(def)} Parameters: ${describeParams(def)}.${
      def.defaultAction
        ? ` The action key \`${key}\` may be left out: a body without any action (e.g. \`{}\`) runs ${def.name}, as in ZStack's reference.`
        : ''
    }`,
    type: 'object',
    properties: { [key]: params, ...TAG_FIELDS },
  };
  if (!def.defaultAction && (def.method === 'PUT' || hasRequired)) schema.required = [key];
  // Without its action key the body must not name another action, else it would match that one's schema too.
  if (def.defaultAction) schema.additionalProperties = false;
  return schema;
}

function responses(defs: ApiDef[]): Schema {
  const replies = [...new Map(defs.map((d) => [JSON.stringify(replyOf(d.name)), replyOf(d.name)])).values()];
  const ok: Schema = {
    description: 'The result',
    content: { 'application/json': { schema: replies.length === 1 ? replies[0] : { anyOf: replies } } },
  };
  const seeds = SEED_EXAMPLES.filter((s) => defs.some((d) => d.name === s.api));
  if (seeds.length) {
    (ok.content as Record<string, Schema>)['application/json']!.examples = Object.fromEntries(
      seeds.map((s) => [s.api, { summary: `${s.api} (response example of ZStack's API reference)`, value: s.response }]),
    );
  }
  const out: Schema = {
    '200': ok,
    '400': {
      description: "The request is malformed (ZStack's REST layer; plain text saying what to fix)",
      content: { 'text/plain': { schema: { type: 'string' } } },
    },
    '503': { description: 'The API failed: `{"error": ErrorCode}`', content: { 'application/json': { schema: ref('ErrorReply') } } },
  };
  if (defs.some((d) => d.mode === 'async')) {
    out['202'] = {
      description:
        'Accepted, not finished within the wait window (and always when the job fails): poll `location` (GET /zstack/v1/api-jobs/{uuid})',
      content: { 'application/json': { schema: ref('AsyncAccepted') } },
    };
  }
  return out;
}

const camel = (path: string): string =>
  path
    .split('/')
    .filter((s) => s && !s.startsWith('{'))
    .map((s) =>
      s
        .split('-')
        .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
        .join(''),
    )
    .join('');

/** An operation for every (method, path) of the registry. */
function operation(method: string, path: string, defs: ApiDef[], usedIds: Set<string>): Schema {
  const first = defs[0]!;
  const vars = pathVars(path);
  let operationId = defs.length === 1 ? first.name : `${method.charAt(0)}${method.slice(1).toLowerCase()}${camel(path)}`;
  // The same API on several paths (QueryImage on /images and /images/{uuid}): name the others by their path.
  const lastVar = /\{([^}]+)\}$/.exec(path)?.[1];
  if (usedIds.has(operationId))
    operationId = lastVar ? `${operationId}By${lastVar.charAt(0).toUpperCase()}${lastVar.slice(1)}` : `${operationId}_${camel(path)}`;
  for (let i = 2; usedIds.has(operationId); i++) operationId = `${operationId.replace(/_\d+$/, '')}_${i}`;
  usedIds.add(operationId);

  const op: Schema = {
    operationId,
    tags: [path.split('/')[1] ?? 'zstack'],
    summary:
      defs.length === 1
        ? `${first.name}: ${first.summary.split('. ')[0]!.replace(/\.$/, '').replaceAll('`', '')}`
        : defs.map((d) => d.name).join(', '),
    description:
      defs.length === 1
        ? `**${first.name}** — ${md(first.summary)}\n\n${modeText(first)}\n\nParameters: ${describeParams(first)}.`
        : `${defs.length} APIs share this path and method; the body's action key chooses one (matched without regard to case), and the request body schema has one entry per API:\n\n${defs
            .map(
              (d) =>
                `- **${d.name}** (\`${d.actionKey ?? '—'}\`${d.defaultAction ? ', also the default when the body names no action' : ''}): ${md(d.summary)} ${modeText(d)} Parameters: ${describeParams(d)}.`,
            )
            .join('\n')}`,
    security: defs.every((d) => d.auth === false) ? [] : [{ OAuth: [] }, { AccessKey: [] }],
    responses: responses(defs),
  };
  const parameters: Schema[] = vars.map((name, i) => {
    const aliases = [...new Set(defs.map((d) => pathVars(d.path)[i]).filter((n) => n && n !== name))];
    return {
      name,
      in: 'path',
      required: true,
      description: aliases.length
        ? `${name} (${aliases.join(', ')} in ${defs
            .filter((d) => pathVars(d.path)[i] !== name)
            .map((d) => d.name)
            .join(', ')})`
        : name,
      schema: { type: 'string' },
    };
  });
  if (method === 'GET' || method === 'DELETE') {
    if (first.query) parameters.push(...QUERY_PARAMS);
    const props = bodyParams(first);
    const required = new Set((props.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(props.properties as Record<string, Schema>)) {
      parameters.push({
        name,
        in: 'query',
        required: required.has(name),
        schema,
        ...(schema.type === 'array' ? { style: 'form', explode: true } : {}),
      });
    }
  }
  if (defs.some((d) => d.mode === 'async')) parameters.push(...ASYNC_HEADERS);
  if (parameters.length) op.parameters = parameters;

  if (method === 'PUT' || method === 'POST') {
    const schemas = defs.map(bodySchema);
    const examples: Record<string, Schema> = {};
    for (const d of defs) examples[d.name] = { summary: d.name, value: exampleBody(d) };
    for (const s of SEED_EXAMPLES.filter((x) => defs.some((d) => d.name === x.api))) {
      examples[`${s.api}-zstack-reference`] = { summary: `${s.api} — request example of ZStack's API reference`, value: s.request };
    }
    op.requestBody = {
      required: !defs.some((d) => d.defaultAction),
      content: { 'application/json': { schema: schemas.length === 1 ? schemas[0] : { oneOf: schemas }, examples } },
    };
  }
  return op;
}

/** The whole OpenAPI 3.1 document. */
export function openApiDocument(defs: readonly ApiDef[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const usedIds = new Set<string>();
  const tags = new Set<string>();
  for (const route of groupRoutes(defs)) {
    const path = API_PREFIX + route.path;
    const op = operation(route.method, route.path, route.defs, usedIds);
    for (const t of op.tags as string[]) tags.add(t);
    (paths[path] ??= {})[route.method.toLowerCase()] = op;
  }
  Object.assign(paths, extraPaths());
  return {
    openapi: '3.1.0',
    info: {
      title: 'zimage — ZStack-compatible image API',
      version: VERSION,
      summary: "ZStack's image REST API (/zstack/v1) served by zimage, plus zimage's operations endpoints",
      description:
        'Log in with `PUT /zstack/v1/accounts/login` (the password is sent as its SHA-512 hex digest) and send `Authorization: OAuth <session uuid>`. PUT actions name the API by the body\'s action key (`{"calculateImageHash": {...}}`), POST creations send `{"params": {...}}`. Asynchronous APIs answer 202 with a `location` to poll when they take longer than the wait window, and always when they fail (then polling answers 503 with the ErrorCode).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    tags: [...[...tags].map((name) => ({ name })), ...EXTRA_TAGS],
    paths,
    components: {
      schemas: COMPONENT_SCHEMAS,
      securitySchemes: {
        ...SECURITY_SCHEMES,
        MetricsToken: { type: 'http', scheme: 'bearer', description: 'ZIMAGE_METRICS_TOKEN, for /metrics off loopback' },
      },
    },
    security: [{ OAuth: [] }, { AccessKey: [] }],
  };
}
