import type { Db } from '../db/connect.js';
import { pendingMigrations } from '../db/migrations.js';

export type Readiness = { ready: true } | { ready: false; reason: string };

/** Whether this node can serve: the database answers, its schema is current, and it is not shutting down. */
export class ReadinessCheck {
  /** Set when shutdown begins: load balancers stop sending work before the server closes. */
  stopping = false;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs = 2000,
  ) {}

  async check(): Promise<Readiness> {
    if (this.stopping) return { ready: false, reason: 'zimage is shutting down' };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const pending = await Promise.race([pendingMigrations(this.db), timeout]);
      if (pending.length) return { ready: false, reason: `database migrations not applied: ${pending.join(', ')}` };
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: `the database does not answer: ${(err as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
