import { ApiError, EXIT, Interrupted, UsageError, describeError } from './errors.js';
import { ApiClient } from './http.js';
import { loadSession, sessionPath, type StoredSession } from './session-store.js';

/** Options every API command takes. */
export interface OutputOptions {
  json?: boolean;
}

const UUID_RE = /^[0-9a-f]{32}$/;
export const isUuid = (s: string): boolean => UUID_RE.test(s);

/** A client on the saved session (`zimage login` first). */
export async function connect(): Promise<{ client: ApiClient; session: StoredSession }> {
  const session = await loadSession();
  if (!session) throw new ApiError(0, `not logged in (no ${sessionPath()}); run: zimage login --url http://HOST:PORT`);
  return { client: new ApiClient(session.url, session.sessionUuid), session };
}

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Prints what went wrong and returns the exit code: 1 API error, 2 usage, 3 unsafe image, 130 interrupted. */
export function report(err: unknown): number {
  if (err instanceof Interrupted) return EXIT.interrupted;
  if (err instanceof UsageError) {
    process.stderr.write(`zimage: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof ApiError) {
    const text = err.error ? describeError(err.error) : err.message;
    const hint = err.error?.code === 'ID.1001' ? '\n(the session has expired or was logged out; run: zimage login)' : '';
    process.stderr.write(`zimage: error: ${text}${hint}\n`);
    return err.exitCode;
  }
  process.stderr.write(`zimage: ${(err as Error)?.message ?? String(err)}\n`);
  return EXIT.api;
}

/** Wraps a command action: errors become a message and an exit code; the process ends when the action does. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number = EXIT.ok;
    try {
      await fn(...args);
    } catch (err) {
      code = report(err);
    }
    // Keep-alive sockets and prompt handles must not hold the process open.
    process.exit(code);
  };
}
