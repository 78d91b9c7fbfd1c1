import { ApiError, type ErrorCode } from './errors.js';

export const API_PREFIX = '/zstack/v1';

export interface Answer {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

export type Query = Record<string, string | number | boolean | string[] | undefined>;

/** One poll of an async call's location. */
export type JobState = { state: 'running' } | { state: 'done'; body: any } | { state: 'failed'; error: ErrorCode };

export interface TaskProgress {
  percent: number;
  state?: string;
  bytesDone?: number;
  bytesTotal?: number;
  bytesPerSecond?: number;
}

function queryString(q: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) p.append(k, String(one));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

const parse = (text: string): unknown => {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
};

/** A failed answer as an ApiError: a ZStack ErrorCode (503) or the REST layer's plain text (4xx). */
function failure(res: Answer): ApiError {
  const error = res.body?.error as ErrorCode | undefined;
  if (error?.code) return new ApiError(res.status, `${error.code}: ${error.details ?? error.description ?? ''}`, error);
  return new ApiError(res.status, `HTTP ${res.status}: ${res.text.trim() || '(empty reply)'}`);
}

/**
 * zimage's REST API as any client sees it: the OAuth session header, JSON bodies with action keys, and async
 * calls answered 200 (finished within the wait window) or 202 + a location to poll.
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    public session?: string,
  ) {}

  /** Any URL (the API's, a job location or an upload URL), with transport failures made readable. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(0, `cannot reach ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
  }

  async raw(method: string, path: string, opts: { body?: unknown; query?: Query; headers?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
    if (this.session) headers.Authorization = `OAuth ${this.session}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['Content-Type'] = 'application/json;charset=UTF-8';
    }
    const res = await this.fetch(`${this.baseUrl}${API_PREFIX}${path}${queryString(opts.query)}`, { method, headers, body });
    const text = await res.text();
    return { status: res.status, body: parse(text), text, headers: res.headers };
  }

  /** A sync API: the 200 body, else an ApiError. */
  async sync(method: string, path: string, opts: { body?: unknown; query?: Query } = {}): Promise<any> {
    const res = await this.raw(method, path, opts);
    if (res.status !== 200) throw failure(res);
    return res.body ?? {};
  }

  /** Starts an async API under `jobUuid`: its result if it finished at once, else the location to poll. */
  async start(
    method: string,
    path: string,
    jobUuid: string,
    opts: { body?: unknown; query?: Query } = {},
  ): Promise<{ body: any } | { location: string }> {
    const res = await this.raw(method, path, { ...opts, headers: { 'X-Job-UUID': jobUuid } });
    if (res.status === 200) return { body: res.body ?? {} };
    if (res.status === 202 && typeof res.body?.location === 'string') return { location: res.body.location };
    throw failure(res);
  }

  /** One poll of a job location: 202 running, 200 done, 503 failed. */
  async poll(location: string): Promise<JobState> {
    const res = await this.fetch(location, { headers: { Accept: 'application/json' } });
    const text = await res.text();
    const answer: Answer = { status: res.status, body: parse(text), text, headers: res.headers };
    if (res.status === 202) return { state: 'running' };
    if (res.status === 200) return { state: 'done', body: answer.body ?? {} };
    if (res.status === 503 && answer.body?.error?.code) return { state: 'failed', error: answer.body.error };
    throw failure(answer);
  }

  jobLocation(jobUuid: string): string {
    return `${this.baseUrl}${API_PREFIX}/api-jobs/${jobUuid}`;
  }

  /** GetTaskProgress, reduced to what a progress bar needs (undefined before the job exists). */
  async progress(jobUuid: string): Promise<TaskProgress | undefined> {
    const body = await this.sync('GET', `/task-progresses/${jobUuid}`);
    const inv = body.inventories?.[0];
    if (!inv) return undefined;
    const o = inv.opaque ?? {};
    return {
      percent: Number(inv.content) || 0,
      state: o.state,
      bytesDone: o.bytesDone,
      bytesTotal: o.bytesTotal,
      bytesPerSecond: o.bytesPerSecond,
    };
  }

  /** CancelLongJob (the job then ends with SYS.1017). */
  async cancel(jobUuid: string): Promise<void> {
    const started = await this.start('PUT', `/longjobs/${jobUuid}/actions`, newJobUuid(), { body: { cancelLongJob: {} } });
    if ('location' in started) {
      for (;;) {
        const s = await this.poll(started.location);
        if (s.state === 'failed') throw new ApiError(503, `${s.error.code}: ${s.error.details ?? ''}`, s.error);
        if (s.state === 'done') return;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
}

/** A job uuid of our own (32 hex chars), sent as X-Job-UUID so the job is known before the call answers. */
export function newJobUuid(): string {
  return crypto.randomUUID().replaceAll('-', '');
}
