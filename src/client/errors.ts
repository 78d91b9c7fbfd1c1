/** Exit codes of the client commands (documented in README). */
export const EXIT = { ok: 0, api: 1, usage: 2, unsafe: 3, interrupted: 130 } as const;

/** A ZStack ErrorCode answered by the server (503 body, or a job's final error). */
export interface ErrorCode {
  code: string;
  description?: string;
  details?: string;
  cause?: ErrorCode;
}

/** The server refused or failed a call: exit 1 (3 when the image was refused as unsafe). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly error?: ErrorCode,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get exitCode(): number {
    return /refused as unsafe/.test(this.error?.details ?? '') ? EXIT.unsafe : EXIT.api;
  }
}

/** The command line itself is wrong (missing session, bad option combination): exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The user interrupted the command: exit 130. */
export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** "SYS.1006 An operation failed: <details>", with its causes, one per line. */
export function describeError(e: ErrorCode): string {
  const lines = [`${e.code}${e.description ? ` ${e.description}` : ''}${e.details ? `: ${e.details}` : ''}`];
  for (let c = e.cause; c; c = c.cause) lines.push(`  caused by ${c.code}${c.details ? `: ${c.details}` : ''}`);
  return lines.join('\n');
}
