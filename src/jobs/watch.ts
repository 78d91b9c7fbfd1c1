import type { Db } from '../db/connect.js';
import { ZStackError } from '../lib/errors.js';
import { UNFINISHED } from './lease.js';
import type { JobOutcome } from './types.js';

/**
 * The outcome of a job another node may run, read from its row every 100 ms until `ms` have passed (then it
 * never settles: the caller only waits that long); `local` answers when this node runs it after all.
 */
export function watchOutcome(
  db: Db,
  uuid: string,
  ms: number,
  local: (uuid: string) => Promise<JobOutcome> | undefined,
): Promise<JobOutcome> {
  return new Promise((resolve) => {
    const until = Date.now() + ms;
    const check = async (): Promise<void> => {
      const mine = local(uuid);
      if (mine) return void mine.then(resolve);
      const row = await db.selectFrom('api_job').select(['state', 'result']).where('uuid', '=', uuid).executeTakeFirst();
      if (row && row.result !== null && !(UNFINISHED as readonly string[]).includes(row.state)) {
        const body = JSON.parse(row.result) as Record<string, unknown> & { error?: { code: string; details?: string } };
        resolve(
          body.error ? { ok: false, error: new ZStackError(body.error.code as never, body.error.details ?? '') } : { ok: true, body },
        );
        return;
      }
      if (Date.now() < until) setTimeout(() => void check().catch(() => undefined), 100);
    };
    void check().catch(() => undefined);
  });
}
