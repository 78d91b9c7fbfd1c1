import type { Logger } from 'pino';

const ATTEMPTS = 15;

/** Refuses (throws) a hook URL the server must not call, e.g. one resolving to a metadata address. */
export type WebHookGuard = (url: URL) => Promise<void>;
const DELAY_MS = 2000;

/**
 * POSTs a job's final body to the caller's X-Web-Hook, as ZStack does: headers X-Job-UUID and
 * X-Job-Success, retried 15 times 2 s apart on a non-2xx answer or an I/O error.
 */
export async function callWebHook(
  url: string,
  jobUuid: string,
  success: boolean,
  body: unknown,
  log: Logger,
  guard: WebHookGuard = async () => {},
): Promise<void> {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      await guard(new URL(url));
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Job-UUID': jobUuid, 'X-Job-Success': String(success) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.ok) return;
      log.warn({ job: jobUuid, status: res.status, attempt }, 'web hook answered non-2xx');
    } catch (err) {
      log.warn({ job: jobUuid, err: (err as Error).message, attempt }, 'web hook call failed');
      if ((err as Error).name === 'WebHookRefused') return;
    }
    if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, DELAY_MS).unref());
  }
}
