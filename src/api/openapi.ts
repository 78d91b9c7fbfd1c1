import type { ApiDef } from './registry.js';
import { API_PREFIX } from './dispatcher.js';

/** The OpenAPI document, generated from the same declarations the dispatcher serves. */
export function openApiDocument(defs: readonly ApiDef[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const def of defs) {
    const path = API_PREFIX + def.path;
    const vars = [...def.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
    const props = def.params.properties as Record<string, unknown>;
    const bodyProps = Object.fromEntries(Object.entries(props).filter(([k]) => !vars.includes(k)));
    const bodySchema = { type: 'object', properties: bodyProps, required: (def.params.required ?? []).filter((k: string) => !vars.includes(k)) };
    const op: Record<string, unknown> = {
      operationId: def.actionKey && def.method === 'PUT' ? `${def.name}` : def.name,
      summary: def.summary,
      parameters: vars.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      responses: def.mode === 'async'
        ? { '200': { description: 'finished within the wait window' }, '202': { description: 'job accepted; poll `location`' } }
        : { '200': { description: 'result' }, '503': { description: '{"error": ErrorCode}' } },
      'x-zstack-mode': def.mode,
    };
    if (def.method === 'POST') {
      op.requestBody = { content: { 'application/json': { schema: { type: 'object', properties: { params: bodySchema, systemTags: { type: 'array', items: { type: 'string' } }, userTags: { type: 'array', items: { type: 'string' } } } } } } };
    } else if (def.method === 'PUT' && def.actionKey) {
      op.requestBody = { content: { 'application/json': { schema: { type: 'object', properties: { [def.actionKey]: bodySchema, systemTags: { type: 'array', items: { type: 'string' } } } } } } };
    }
    const entry = (paths[path] ??= {});
    const method = def.method.toLowerCase();
    // Several PUT actions share one path: keep them apart with a suffix OpenAPI tools accept.
    const key = entry[method] ? `x-${method}-${def.actionKey ?? def.name}` : method;
    entry[key] = op;
  }
  return {
    openapi: '3.0.3',
    info: { title: 'zimage — ZStack-compatible image API', version: '1' },
    paths,
  };
}
