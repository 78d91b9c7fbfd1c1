import type { ClientChannel } from 'ssh2';
import { StorageError } from '../../lib/errors.js';

/*
 * A remote command's channel read to its end. Scripts report on stderr: `@E <code> …` for a known failure,
 * `@X <status>` as their last line (see connection.ts), other `@…` lines for their own protocol.
 */

const SHORT_TIMEOUT_MS = 60_000;

export interface RunOptions {
  /** Bytes written to the command's stdin (then EOF). Without it stdin is closed at once. */
  stdin?: Buffer;
  /** Receives each protocol line of stderr (`@…`) other than `@E`. */
  onStderrLine?: (line: string) => void;
  /** Abort: the channel is closed (scripts that can be killed handle that themselves). */
  signal?: AbortSignal;
  /** Fails with 'unreachable' when the command has not ended after this long. */
  timeoutMs?: number;
  /** Retries once on a fresh connection when the pooled one turned out dead before the command started. */
  retry?: boolean;
}

export interface RunResult {
  code: number | null;
  signal?: string;
  stdout: string;
  /** The `@E` line's words, when the script reported a known failure. */
  failure?: string[];
  /** Other stderr text (tool messages), at most a few KiB. */
  stderr: string;
}

/** Reads a channel to its end: stdout, `@E` failure, other stderr lines, exit status. */
export function collect(ch: ClientChannel, where: string, opts: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const out: Buffer[] = [];
    let errText = '';
    let failure: string[] | undefined;
    let pending = '';
    let code: number | null | undefined;
    let marked: number | undefined;
    let sig: string | undefined;
    let settled = false;
    const onLine = (line: string): void => {
      if (line.startsWith('@E ')) {
        failure = line.slice(3).split(' ');
      } else if (line.startsWith('@X ')) {
        marked = Number(line.slice(3));
      } else if (line.startsWith('@')) {
        opts.onStderrLine?.(line);
      } else if (errText.length < 4096) {
        errText += `${line}\n`;
      }
    };
    ch.on('data', (d: Buffer) => out.push(d));
    ch.stderr.on('data', (d: Buffer) => {
      pending += d.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, i));
        pending = pending.slice(i + 1);
      }
    });
    ch.on('exit', (c: number | null, s?: string) => {
      code = c;
      if (s) sig = s;
    });
    ch.on('error', () => {
      // Reported by 'close' without an exit status.
    });
    const timer = setTimeout(() => {
      finish(
        new StorageError(
          'unreachable',
          `a command on ${where} did not finish within ${Math.round((opts.timeoutMs ?? SHORT_TIMEOUT_MS) / 1000)} s; the host may be overloaded or a file system may hang.`,
        ),
      );
      ch.close();
    }, opts.timeoutMs ?? SHORT_TIMEOUT_MS);
    const onAbort = (): void => {
      finish(opts.signal!.reason);
      ch.close();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) return reject(err);
      if (pending) onLine(pending);
      if (code === undefined && marked !== undefined && Number.isInteger(marked)) code = marked;
      if (code === undefined) return reject(new LostConnection(where));
      resolve({
        code,
        ...(sig ? { signal: sig } : {}),
        stdout: Buffer.concat(out).toString('utf8'),
        ...(failure ? { failure } : {}),
        stderr: errText.trim(),
      });
    };
    ch.on('close', () => finish());
    if (opts.stdin) ch.end(opts.stdin);
    else ch.end();
  });
}

/** The channel closed without an exit status: the connection (or sshd's session) went away. */
export class LostConnection extends StorageError {
  constructor(where: string) {
    super('unreachable', `the SSH connection to ${where} was lost before a command finished; check that the host and its sshd are up.`);
  }
}
