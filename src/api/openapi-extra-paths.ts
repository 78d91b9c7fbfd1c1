import { EXPORT_PATH } from '../services/image-export.js';
import { UPLOAD_PATH } from '../services/image-upload.js';
import { API_PREFIX } from './dispatcher.js';

/*
 * The paths outside the action registry: ZStack's job polling, this document, and zimage's own endpoints
 * (health, readiness, metrics, the upload/export byte routes). They are registered by server.ts, ops.ts and
 * data-plane.ts; this is their documentation.
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const text = (description: string): Schema => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } });
const json = (description: string, schema: Schema, example?: unknown): Schema => ({
  description,
  content: { 'application/json': { schema, ...(example === undefined ? {} : { example }) } },
});
const header = (name: string, description: string, schema: Schema = { type: 'string' }): Schema => ({
  name,
  in: 'header',
  required: false,
  description,
  schema,
});
const tokenParam: Schema = {
  name: 'token',
  in: 'path',
  required: true,
  description: 'The unguessable token of the upload or export URL',
  schema: { type: 'string' },
};

const uploadState: Schema = {
  type: 'object',
  properties: {
    state: { type: 'string', examples: ['Uploading', 'Succeeded', 'Failed'] },
    offset: { type: 'integer', format: 'int64', description: 'Bytes received so far: resume from here' },
    totalSize: { type: 'integer', format: 'int64', description: 'The declared size' },
    error: { type: 'string', description: 'Why the upload failed' },
  },
};

export const EXTRA_TAGS = [
  { name: 'api-jobs', description: "Polling of asynchronous calls, as ZStack's SDKs do it" },
  { name: 'zimage operations', description: 'Health, readiness and metrics, outside /zstack/v1, without a session' },
  {
    name: 'zimage data plane',
    description:
      'Image bytes: upload for AddImage with an upload:// url, download of exported images. Authenticated by the token in the URL.',
  },
];

export function extraPaths(): Record<string, Schema> {
  return {
    [`${API_PREFIX}/api-jobs/{uuid}`]: {
      get: {
        operationId: 'GetApiJob',
        tags: ['api-jobs'],
        summary: 'Result of an asynchronous call',
        description:
          'An asynchronous API answers `202 {"location": ".../api-jobs/<uuid>"}` when it has not finished within the wait window (and always when it fails). GET the location until it stops answering 202: **202 `{}`** the job is queued or running; **200** the API\'s result; **503 `{"error": ErrorCode}`** the job failed. No session is needed: job uuids are unguessable. Progress while it runs: `GET /zstack/v1/task-progresses/<uuid>`.',
        security: [],
        parameters: [
          {
            name: 'uuid',
            in: 'path',
            required: true,
            description: 'The job uuid (the X-Job-UUID sent, or the one in `location`)',
            schema: { type: 'string' },
          },
        ],
        responses: {
          '200': json("The job succeeded: the API's reply", { type: 'object' }),
          '202': json('The job is queued or running: poll again', { type: 'object', maxProperties: 0 }, {}),
          '404': text('Unknown or expired job'),
          '503': json('The job failed', ref('ErrorReply')),
        },
      },
    },
    [`${API_PREFIX}/openapi.json`]: {
      get: {
        operationId: 'GetOpenApiDocument',
        tags: ['zimage operations'],
        summary: 'This document (OpenAPI 3.1)',
        security: [],
        responses: { '200': json('The OpenAPI document', { type: 'object' }) },
      },
    },
    '/health': {
      get: {
        operationId: 'Health',
        tags: ['zimage operations'],
        summary: 'The process is alive',
        security: [],
        responses: { '200': json('Alive', { type: 'object', properties: { status: { const: 'ok' } } }, { status: 'ok' }) },
      },
    },
    '/ready': {
      get: {
        operationId: 'Ready',
        tags: ['zimage operations'],
        summary: 'The node can serve: the database answers, migrations are applied, not shutting down',
        security: [],
        responses: {
          '200': json('Ready', { type: 'object', properties: { status: { const: 'ready' }, version: { type: 'string' } } }),
          '503': json('Not ready, with the reason', {
            type: 'object',
            properties: { status: { const: 'not ready' }, reason: { type: 'string' }, version: { type: 'string' } },
          }),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'Metrics',
        tags: ['zimage operations'],
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Served without a token to clients on loopback; any other client sends `Authorization: Bearer <ZIMAGE_METRICS_TOKEN>`.',
        security: [{}, { MetricsToken: [] }],
        responses: {
          '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          '401': text('A token is configured and the one sent is missing or wrong'),
          '403': text('Not on loopback and no token is configured'),
        },
      },
    },
    [`${UPLOAD_PATH}/{token}`]: {
      parameters: [tokenParam],
      put: {
        operationId: 'UploadImageBytes',
        tags: ['zimage data plane'],
        summary: 'Upload the bytes of an image added with an upload:// url (resumable)',
        description:
          'Send the image as the raw body. To resume, send `X-Offset: <n>` (or `Content-Range: bytes <n>-*/<total>`) where n is the bytes received so far (HEAD tells it). Declare the size with `X-Image-Size` (the PUT that reaches it completes the add) or finish with `X-Upload-Complete: true`.',
        security: [],
        parameters: [
          header('X-Offset', 'Where this body starts: the bytes received so far', { type: 'integer', format: 'int64', minimum: 0 }),
          header('Content-Range', '`bytes <n>-*/<total>`: the offset and the total size in one header'),
          header('X-Image-Size', 'The total size of the image in bytes', { type: 'integer', format: 'int64', minimum: 0 }),
          header('X-Upload-Complete', '`true`: this body is the last one', { type: 'boolean' }),
        ],
        requestBody: {
          required: true,
          content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
        },
        responses: {
          '200': json('Bytes stored; the state and offset (also in the X-Offset header)', uploadState),
          '400': text('Bad headers'),
          '404': text('No upload at this URL'),
          '409': text(
            'The offset does not match the bytes received, or another request (on any node) is uploading to this URL (the X-Offset header says where to resume)',
          ),
          '421': text(
            'This node cannot continue the upload: its local-directory (or Ceph) backup storage keeps it on the node that answered AddImage, named in the text',
          ),
        },
      },
      get: {
        operationId: 'GetUploadState',
        tags: ['zimage data plane'],
        summary: 'State and offset of an upload (HEAD: the same in headers)',
        security: [],
        responses: { '200': json('State and offset', uploadState), '404': text('No upload at this URL') },
      },
    },
    [`${EXPORT_PATH}/{token}/{file}`]: {
      get: {
        operationId: 'DownloadExportedImage',
        tags: ['zimage data plane'],
        summary: 'Download an exported image (single Range supported, ETag = MD5; HEAD answers the headers)',
        security: [],
        parameters: [
          tokenParam,
          { name: 'file', in: 'path', required: true, description: '<name>.<format>', schema: { type: 'string' } },
          header('Range', 'bytes=<start>-<end>'),
        ],
        responses: {
          '200': {
            description: 'The image',
            content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
          },
          '206': {
            description: 'The requested range',
            content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
          },
          '304': { description: 'Not modified (If-None-Match)' },
          '404': text('Unknown or deleted export'),
          '416': text('The range is outside the image'),
          '503': text('The backup storage cannot be read right now'),
        },
      },
    },
  };
}
