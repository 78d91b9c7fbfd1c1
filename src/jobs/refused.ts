import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiJobTable } from '../db/schema.js';
import { ZStackError } from '../lib/errors.js';
import { LruMap } from '../lib/lru.js';

const VARIANT = '89ab';
const UNAUTHENTICATED = 'zimage:api-job:unauthenticated:v1:';

/**
 * Answers for async API calls refused before they became jobs because the session is missing from the
 * database or expired. The caller still gets ZStack's 202 + location and, on polling, 503 with ID.1001, but
 * nothing is stored and nothing runs:
 *
 * - a job id zimage picks is self-certifying: `ssssssss rrrr4rrr Vmmmmmmmmmmmmmmm`, where s = creation time
 *   (unix seconds, hex), r = random, and m = an HMAC (keyed from the node's secret key) of the first half and
 *   the marker "unauthenticated". It keeps a v4 uuid's shape. Any node with the same key answers it.
 * - a caller-chosen X-Job-UUID cannot carry a MAC: it is remembered on this node in a bounded LRU.
 */
export class RefusedJobs {
  private readonly remembered: LruMap<string, { at: number; apiName: string }>;

  constructor(
    private readonly key: Buffer,
    private readonly retentionMs: number,
    capacity = 10_000,
  ) {
    this.remembered = new LruMap(capacity);
  }

  /** A job id for a call refused for want of a valid session: derived, or the caller's own (remembered). */
  issue(apiName: string, callerUuid?: string): string {
    if (callerUuid !== undefined) {
      this.remembered.set(callerUuid, { at: Date.now(), apiName });
      return callerUuid;
    }
    const seconds = Math.floor(Date.now() / 1000)
      .toString(16)
      .padStart(8, '0')
      .slice(-8);
    const random = randomBytes(4).toString('hex');
    const first = seconds + random.slice(0, 4) + '4' + random.slice(5);
    return first + this.mac(first);
  }

  /** The failed job a refused call's id stands for; undefined when it is not one (or has expired). */
  derived(uuid: string): ApiJobTable | undefined {
    if (!/^[0-9a-f]{32}$/.test(uuid)) return undefined;
    const first = uuid.slice(0, 16);
    const expected = Buffer.from(this.mac(first));
    if (!timingSafeEqual(expected, Buffer.from(uuid.slice(16)))) return undefined;
    return this.row(uuid, parseInt(first.slice(0, 8), 16) * 1000, 'unknown');
  }

  /** A refused call with a caller-chosen id, if this node still remembers it. */
  rememberedJob(uuid: string): ApiJobTable | undefined {
    const r = this.remembered.peek(uuid);
    return r ? this.row(uuid, r.at, r.apiName) : undefined;
  }

  private mac(first: string): string {
    const h = createHmac('sha256', this.key)
      .update(UNAUTHENTICATED + first)
      .digest('hex')
      .slice(0, 16);
    return VARIANT[parseInt(h[0]!, 16) & 3] + h.slice(1);
  }

  private row(uuid: string, at: number, apiName: string): ApiJobTable | undefined {
    if (Date.now() - at > this.retentionMs) return undefined;
    const error = new ZStackError('ID.1001', 'Session expired');
    return {
      uuid,
      api_name: apiName,
      state: 'Failed',
      result: JSON.stringify({ error: error.toBody() }),
      owner_node: '',
      resource_uuid: null,
      create_date: at,
      start_date: at,
      finish_date: at,
      deadline: at,
      bytes_done: 0,
      bytes_total: 0,
      throughput: 0,
      web_hook: null,
      cancel_requested: 0,
      lease_until: 0,
      attempt: 0,
      heavy: 0,
      request: null,
      affinity_node: null,
      previous_node: null,
    };
  }
}
