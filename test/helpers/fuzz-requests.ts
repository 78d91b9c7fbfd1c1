/**
 * fast-check generators of HTTP requests against zimage's declared APIs: well-typed-ish parameters taken
 * from each API's params schema, and hostile ones (huge strings, prototype names as keys, nested objects,
 * out-of-range numbers, control characters, unicode, broken JSON, broken percent-encoding).
 *
 * Safety: the fuzzed server must never reach beyond loopback. Fields that make the server connect somewhere
 * (SFTP hostnames, Ceph monitors, storage directories, import urls, web hooks) only ever get loopback
 * targets, paths under the test's own directory, or values that validation refuses before any use (they
 * carry a control character).
 */
import fc from 'fast-check';
import type { TSchema } from '@sinclair/typebox';
import type { ApiDef } from '../../src/api/registry.js';

export interface FuzzRequest {
  api: string;
  method: string;
  /** Path below /zstack/v1, query string included. */
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** What the generators may aim at: live fixture ids, loopback servers, the test's own directories. */
export interface FuzzTargets {
  ids: () => string[];
  importUrls: string[];
  storageDirs: string[];
  hookUrls: string[];
  sessionHeader: () => string;
}

export const PROTO_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
  '__lookupSetter__',
  'propertyIsEnumerable',
];

const NASTY = [
  '',
  ' ',
  '%',
  '%00',
  '%ZZ',
  '\u0000',
  '\u202e',
  '\ud800',
  'null',
  'true',
  '1e309',
  '-0',
  "'; DROP TABLE image;--",
  '../../etc/passwd',
  '${x}',
  '{{x}}',
  'é',
  '𝔘𝔫𝔦',
  '\uFEFF',
  'a'.repeat(256),
];

/** Any string: control characters, lone surrogates, astral unicode, huge. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 3, arbitrary: fc.constantFrom(...PROTO_NAMES, ...NASTY) },
  { weight: 1, arbitrary: fc.integer({ min: 250, max: 70_000 }).map((n) => 'x'.repeat(n)) },
);

/** A string that validation must refuse before using it (it holds a control character). */
const inertString: fc.Arbitrary<string> = fc
  .tuple(hostileString, fc.constantFrom('\u0001', '\u0007', '\u007f', '\u0085', '\u001b'))
  .map(([s, c]) => `${s.slice(0, 64)}${c}`);

const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, -1, 0, 1e308, -1e308, 0.5, Number('99999999999999999999')),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...PROTO_NAMES), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) },
);

/** Loopback-only or refused-before-use values for the fields that make the server connect somewhere. */
function safeField(def: ApiDef, field: string, t: FuzzTargets): fc.Arbitrary<unknown> | undefined {
  const list = (a: fc.Arbitrary<string>) => fc.array(a, { maxLength: 3 });
  switch (field) {
    case 'hostname':
      return fc.oneof(fc.constantFrom('127.0.0.1', 'localhost', '::1', '127.0.0.2', ''), inertString);
    case 'monUrls':
      return fc.oneof(list(fc.constantFrom('127.0.0.1:1', '[::1]:1', 'u:p@127.0.0.1:1')), list(inertString), fc.constant([]));
    case 'sshPort':
      return fc.oneof(fc.constantFrom(1, 9), hostileNumber);
    case 'cephConf':
    case 'keyring':
      return fc.oneof(fc.constantFrom(...t.storageDirs.map((d) => `${d}/none.conf`)), inertString);
    case 'url':
      if (def.path.startsWith('/images')) return fc.oneof(fc.constantFrom(...t.importUrls), inertString);
      return fc.oneof(fc.constantFrom(...t.storageDirs, '/proc/nope', '/nonexistent-zimage-fuzz/x', 'relative/dir'), inertString);
    default:
      return undefined;
  }
}

/** One of the live ids, read when the value is generated (fixtures are re-created under new ids). */
const liveId = (t: FuzzTargets): fc.Arbitrary<string> =>
  fc.nat({ max: 1 << 20 }).map((i) => {
    const ids = t.ids();
    return ids[i % ids.length] ?? 'none';
  });

/** A value of roughly the declared type. */
function typedValue(prop: TSchema, t: FuzzTargets): fc.Arbitrary<unknown> {
  const valid = prop.validValues as string[] | undefined;
  switch (prop.type) {
    case 'string':
      return fc.oneof(
        valid ? fc.constantFrom(...valid) : liveId(t),
        valid ? fc.constantFrom(...valid.map((v) => v.toLowerCase())) : fc.string({ maxLength: 12 }),
      );
    case 'integer':
    case 'number':
      return fc.oneof(
        fc.integer({ min: (prop.minimum as number) ?? 0, max: Math.min((prop.maximum as number) ?? 1000, 1_000_000) }),
        hostileNumber,
      );
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(fc.oneof(liveId(t), fc.string({ maxLength: 8 })), { maxLength: 3 });
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** The parameters object: each declared field omitted, typed or hostile; plus stray and prototype keys. */
function paramsOf(def: ApiDef, t: FuzzTargets): fc.Arbitrary<Record<string, unknown>> {
  const props = Object.entries(def.params.properties ?? {});
  const fields = props.map(([name, prop]) => {
    const safe = safeField(def, name, t);
    const value = safe ?? fc.oneof({ weight: 3, arbitrary: typedValue(prop, t) }, { weight: 1, arbitrary: hostileValue });
    return fc.option(
      value.map((v) => [name, v] as const),
      { freq: 4 },
    );
  });
  const extra = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PROTO_NAMES), fc.string({ maxLength: 8 })), hostileValue), { maxLength: 2 });
  return fc.tuple(fc.tuple(...fields), extra).map(([chosen, more]) => {
    const out: Record<string, unknown> = {};
    // defineProperty, so "__proto__" becomes an own key that JSON.stringify sends.
    const put = (k: string, v: unknown) =>
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    for (const kv of chosen) if (kv) put(kv[0], kv[1]);
    // Stray keys must not reach fields with a safety rule (they would bypass it).
    for (const [k, v] of more) if (!safeField(def, k, t)) put(k, v);
    return out;
  });
}

const QUERY_KEYS = [
  'q',
  'limit',
  'start',
  'sort',
  'fields',
  'count',
  'replyWithCount',
  'groupBy',
  'filterName',
  'systemTags',
  'userTags',
  ...PROTO_NAMES,
];
const QUERY_FIELDS = [
  'name',
  'uuid',
  'size',
  'status',
  'createDate',
  'system',
  'backupStorageRefs.backupStorageUuid',
  'backupStorage.name',
  '__systemTag__',
  'nope',
  ...PROTO_NAMES,
  ...PROTO_NAMES.map((p) => `backupStorageRefs.${p}`),
  ...PROTO_NAMES.map((p) => `backupStorage.${p}`),
];
const OPS = ['=', '!=', '>', '<', '>=', '<=', '?=', '!?=', '~=', '!~=', ' is null', ' not null', ''];

const clip = (a: fc.Arbitrary<string>) => a.map((s) => s.slice(0, 1500)); // longer is the URL limit's business (414/431)
const condition = clip(
  fc
    .tuple(
      fc.constantFrom(...QUERY_FIELDS),
      fc.constantFrom(...OPS),
      fc.oneof(fc.constantFrom('1', 'a%', 'Ready', 'true', '1,2', '99999999999999999999', '1.5', '-1', 'Nov 1, 2026'), hostileString),
    )
    .map(([f, op, v]) => `${f}${op}${v}`),
);
const sortValue = fc.tuple(fc.constantFrom('', '+', '-', ' '), fc.constantFrom(...QUERY_FIELDS)).map(([d, f]) => `${d}${f}`);
const numberish = fc.oneof(
  fc.constantFrom('0', '1', '-1', '2147483647', '2147483648', '99999999999999999999', '1.5', '1e3', ' 5 ', '+5', 'true', ''),
  fc.nat().map(String),
);
const queryValue: fc.Arbitrary<string> = fc.oneof(condition, sortValue, numberish, clip(hostileString));

/** One key=value of a query string, biased to the query language's own parameters. */
const queryPair: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constant('q'), condition) },
  { weight: 2, arbitrary: fc.tuple(fc.constant('sort'), sortValue) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('limit', 'start'), numberish) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...QUERY_KEYS), queryValue) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 6 }), queryValue) },
);

function encode(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return s.replace(/[^\x21-\x7e]/g, '_'); // lone surrogates cannot be encoded: send what is left
  }
}

/** A query string: encoded pairs, sometimes raw broken text. */
const queryString: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.array(queryPair, { maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '%',
      '%E0%A4%A',
      'q',
      'q=',
      '&&&',
      '__proto__[x]=1',
      'a[b][c]=1',
      'limit=1&limit=2&limit=x',
      'q=name%3D%00',
      '=',
    ),
  },
);

/** Printable latin-1 only: what fetch can put in a header. */
const headerSafe = (s: string) =>
  s
    .replace(/[^\x20-\x7e\xa0-\xff]/g, '')
    .trim()
    .slice(0, 4000);

function headersOf(t: FuzzTargets): fc.Arbitrary<Record<string, string>> {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: a });
  return fc
    .record({
      auth: fc.oneof(
        { weight: 8, arbitrary: fc.constant('valid') },
        { weight: 1, arbitrary: fc.constantFrom('', 'OAuth fake', 'OAuth', 'Basic x', 'OAuth  ', 'oauth x') },
        { weight: 1, arbitrary: hostileString.map((s) => `OAuth ${headerSafe(s)}`) },
      ),
      timeout: opt(
        fc.oneof(fc.constantFrom('1', '0', '-1', '2200000', '1e9', '0.5', 'x', '2147483648', '9'.repeat(30)), fc.nat().map(String)),
      ),
      jobUuid: opt(fc.oneof(fc.stringMatching(/^[0-9a-f]{32}$/), hostileString.map(headerSafe))),
      hook: opt(fc.oneof(fc.constantFrom(...t.hookUrls), fc.constantFrom('ftp://x', 'garbage', 'http://', 'http:///x'))),
      schema: opt(fc.constantFrom('true', '', 'x')),
      contentType: opt(
        fc.constantFrom(
          'application/json',
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/json; charset=latin1',
          'x/y',
        ),
      ),
      requestIp: opt(fc.constantFrom('10.0.0.9', 'garbage', '::1')),
    })
    .map((h) => {
      const out: Record<string, string> = {};
      if (h.auth === 'valid') out.Authorization = t.sessionHeader();
      else if (h.auth !== '') out.Authorization = headerSafe(h.auth) || 'OAuth';
      if (h.timeout !== null) out['X-API-Timeout'] = h.timeout;
      if (h.jobUuid !== null && h.jobUuid !== '') out['X-Job-UUID'] = h.jobUuid;
      if (h.hook !== null) out['X-Web-Hook'] = h.hook;
      if (h.schema !== null) out['X-JSON-Schema'] = h.schema;
      if (h.contentType !== null) out['Content-Type'] = h.contentType;
      if (h.requestIp !== null) out['X-Request-Ip'] = h.requestIp;
      return out;
    });
}

/** Fills {vars}: fixture ids mostly, hostile segments sometimes (percent-encoded, or raw broken escapes). */
function pathOf(def: ApiDef, t: FuzzTargets): fc.Arbitrary<string> {
  const vars = [...def.path.matchAll(/\{[^}]+\}/g)].length;
  const segment = fc.oneof(
    { weight: 6, arbitrary: liveId(t) },
    { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{32}$/) },
    { weight: 2, arbitrary: hostileString.map((s) => encode(s.slice(0, 1500))) },
    { weight: 1, arbitrary: fc.constantFrom('%ZZ', '%', '..', '%2e%2e', '%2F', '') },
  );
  return fc.tuple(...Array.from({ length: vars }, () => segment)).map((values) => {
    let i = 0;
    return def.path.replace(/\{[^}]+\}/g, () => values[i++]!);
  });
}

/** The body: the declared shape (params / action key) mostly, sometimes another shape or broken JSON. */
function bodyOf(def: ApiDef, params: Record<string, unknown>, tags: unknown): fc.Arbitrary<string | undefined> {
  const wrapped: Record<string, unknown> = def.method === 'PUT' ? { [def.actionKey ?? 'x']: params } : { params };
  if (tags !== undefined) wrapped.systemTags = tags;
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(JSON.stringify(wrapped)) },
    { weight: 1, arbitrary: fc.constant(JSON.stringify(params)) },
    {
      weight: 1,
      arbitrary: fc.constant(
        def.actionKey ? JSON.stringify({ [def.actionKey.toUpperCase()]: params, [def.actionKey]: params }) : '{"params":[]}',
      ),
    },
    { weight: 1, arbitrary: hostileValue.map((v) => JSON.stringify(v) ?? '') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{',
        '[]',
        'null',
        '"x"',
        '{"__proto__":{"params":{}}}',
        '{"params":{"__proto__":{"name":"x"}}}',
        '\u0000',
        '{"a":'.repeat(2000),
      ),
    },
  );
}

/** One request against `def`, or sometimes against it with another method. */
export function requestFor(def: ApiDef, t: FuzzTargets): fc.Arbitrary<FuzzRequest> {
  const tags = fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.oneof(fc.array(fc.constantFrom('checksum::md5::00', 'bootMode::UEFI', 'x'), { maxLength: 2 }), hostileValue),
    },
  );
  return fc
    .tuple(
      pathOf(def, t),
      paramsOf(def, t),
      queryString,
      headersOf(t),
      tags,
      fc.oneof(
        { weight: 15, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
      ),
    )
    .chain(([path, params, qs, headers, tag, otherMethod]) => {
      const method = otherMethod ?? def.method;
      const withQuery = method === 'GET' || method === 'DELETE';
      let query = qs;
      if (withQuery && !def.query) {
        const own = Object.entries(params).map(([k, v]) => `${encode(k)}=${encode(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`);
        query = [...own, qs].filter(Boolean).join('&');
      }
      const full = query ? `${path}?${query}` : path;
      const noBody = method === 'GET' || method === 'OPTIONS';
      return (noBody ? fc.constant(undefined) : bodyOf(def, params, tag ?? undefined)).map((body) => ({
        api: def.name,
        method,
        path: full,
        headers,
        body,
      }));
    });
}
