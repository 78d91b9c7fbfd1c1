/** The rejection of an aborted hashing job: `name === 'AbortError'`, the signal's reason as `cause`. */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'ABORT_ERR';
  constructor(message = 'The hashing operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function abortErrorFor(signal: AbortSignal | undefined): AbortError {
  return new AbortError(undefined, signal?.reason === undefined ? undefined : { cause: signal.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortErrorFor(signal);
}

/** Throttles progress callbacks: at most one per `intervalMs`, plus `done()` with the total at the end. */
export class ProgressThrottle {
  private last = 0;
  private lastValue = -1;
  constructor(
    private readonly cb: ((bytesDone: number) => void) | undefined,
    private readonly intervalMs = 100,
  ) {
    this.last = performance.now();
  }

  report(bytesDone: number): void {
    if (this.cb === undefined) return;
    const now = performance.now();
    if (now - this.last < this.intervalMs || bytesDone <= this.lastValue) return;
    this.last = now;
    this.lastValue = bytesDone;
    this.cb(bytesDone);
  }

  done(total: number): void {
    if (this.cb === undefined) return;
    this.lastValue = total;
    this.cb(total);
  }
}
