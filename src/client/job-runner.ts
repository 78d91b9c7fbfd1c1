import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, Interrupted, type ErrorCode } from './errors.js';
import { newJobUuid, type ApiClient, type Query } from './http.js';
import { interactiveOutput, progressView, type ProgressView } from './progress.js';
import { askYesNo } from './prompts.js';

export interface JobOptions {
  /** Shown before the bar, e.g. "add disk". */
  title: string;
  /** Draw a progress bar (long jobs) when output is a terminal. */
  bar?: boolean;
  /** On interrupt, leave the job running instead of cancelling it. */
  detach?: boolean;
  pollMs?: number;
}

const POLL_MS = 400;

/** Resolves when SIGINT arrives (Ctrl-C on a terminal, or `kill -INT`); while waiting, SIGINT does not kill us. */
function onInterrupt(): { fired: Promise<void>; isFired: () => boolean; dispose: () => void } {
  let fire!: () => void;
  let fired = false;
  const p = new Promise<void>((r) => (fire = r));
  const handler = () => {
    fired = true;
    fire();
  };
  process.on('SIGINT', handler);
  return { fired: p, isFired: () => fired, dispose: () => process.off('SIGINT', handler) };
}

/** Draws the job's task progress on the bar; a failed progress read is skipped (the next poll tries again). */
async function showProgress(client: ApiClient, jobUuid: string, view: ProgressView): Promise<void> {
  const p = await client.progress(jobUuid).catch(() => undefined);
  if (p)
    view.update({
      done: p.bytesDone ?? 0,
      total: p.bytesTotal ?? 0,
      rate: p.bytesPerSecond,
      note: p.state === 'Queued' ? 'queued' : undefined,
    });
}

const errorOf = (e: ErrorCode) => new ApiError(503, `${e.code}: ${e.details ?? e.description ?? ''}`, e);

/**
 * Runs one async API the way a watching person expects: our own X-Job-UUID (so the job is known from the
 * first byte), a progress bar from task-progress, the result on 200, polling on 202 (202 running, 200 done,
 * 503 failed), and Ctrl-C that asks whether to cancel the job (without a terminal: cancels, unless detach).
 */
export async function runJob(
  client: ApiClient,
  method: string,
  path: string,
  body: unknown,
  opts: JobOptions,
  query?: Query,
): Promise<any> {
  const jobUuid = newJobUuid();
  const view: ProgressView = opts.bar ? progressView(opts.title) : progressView('', false);
  const interrupt = onInterrupt();
  let location: string | undefined;
  let outcome: { body: any } | { error: unknown } | undefined;
  const started = client.start(method, path, jobUuid, { body, query }).then(
    (r) => {
      if ('body' in r) outcome = { body: r.body };
      else location = r.location;
    },
    (error: unknown) => {
      outcome = { error };
    },
  );
  try {
    while (!outcome) {
      if (location) {
        const s = await client.poll(location);
        if (s.state === 'done') outcome = { body: s.body };
        else if (s.state === 'failed') outcome = { error: errorOf(s.error) };
        if (outcome) break;
      }
      if (opts.bar) await showProgress(client, jobUuid, view);
      await Promise.race([sleep(opts.pollMs ?? POLL_MS), started, interrupt.fired]);
      if (interrupt.isFired()) {
        view.pause();
        await interrupted(client, jobUuid, started, () => outcome !== undefined, opts);
      }
    }
    if (opts.bar && 'body' in outcome) {
      const p = await client.progress(jobUuid).catch(() => undefined);
      if (p && (p.bytesTotal ?? 0) > 0) view.update({ done: p.bytesTotal!, total: p.bytesTotal!, rate: p.bytesPerSecond });
    }
  } finally {
    view.stop();
    interrupt.dispose();
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.body;
}

/** Ctrl-C / SIGINT during a job: ask (terminal), cancel (no terminal), or leave it running (detach). Always ends in Interrupted. */
async function interrupted(
  client: ApiClient,
  jobUuid: string,
  started: Promise<void>,
  finished: () => boolean,
  opts: JobOptions,
): Promise<never> {
  const follow = `follow it with: zimage job show ${jobUuid} --wait`;
  if (opts.detach) {
    process.stderr.write(`\ninterrupted; job ${jobUuid} keeps running on the server (--detach); ${follow}\n`);
    throw new Interrupted('detached');
  }
  const terminal = Boolean(process.stdin.isTTY) && interactiveOutput();
  if (terminal) {
    process.stderr.write('\n');
    if (!(await askYesNo(`Cancel job ${jobUuid} on the server?`))) {
      process.stderr.write(`job ${jobUuid} keeps running on the server; ${follow}\n`);
      throw new Interrupted('left running');
    }
  }
  // The job exists once the call has answered (at most the server's wait window).
  await started;
  if (finished()) {
    process.stderr.write(`interrupted; job ${jobUuid} had already finished\n`);
    throw new Interrupted('finished');
  }
  try {
    await client.cancel(jobUuid);
  } catch (err) {
    if (!(err instanceof ApiError && err.error?.code === 'SYS.1006')) throw err; // SYS.1006: it just finished
  }
  const end = await waitForEnd(client, jobUuid);
  process.stderr.write(`job ${jobUuid} cancelled${end ? ` (${end})` : ''}\n`);
  throw new Interrupted('cancelled');
}

/** Polls the job until it is terminal; its error code, if it failed. */
async function waitForEnd(client: ApiClient, jobUuid: string, ms = 60_000): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = await client.poll(client.jobLocation(jobUuid));
    if (s.state === 'failed') return s.error.code;
    if (s.state === 'done') return 'it had finished';
    await sleep(200);
  }
  return undefined;
}

/** `zimage job show --wait`: follows an existing job to its end, with a bar on a terminal. */
export async function followJob(client: ApiClient, jobUuid: string, opts: { bar: boolean }): Promise<any> {
  const view = opts.bar ? progressView(`job ${jobUuid.slice(0, 8)}`) : progressView('', false);
  try {
    for (;;) {
      const s = await client.poll(client.jobLocation(jobUuid));
      if (s.state === 'done') return s.body;
      if (s.state === 'failed') throw errorOf(s.error);
      if (opts.bar) await showProgress(client, jobUuid, view);
      await sleep(POLL_MS);
    }
  } finally {
    view.stop();
  }
}
