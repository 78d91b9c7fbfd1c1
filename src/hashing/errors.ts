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
  private trailing: ReturnType<typeof setTimeout> | undefined;
  /**
   * @param follow where the bytes stand now (`current`) and how many were handed over (`submitted`): when
   * given, a report held back by the interval is sent later, and reports keep following `current` until
   * it catches up with `submitted` — so a stream that stalls still shows what was hashed.
   */
  constructor(
    private readonly cb: ((bytesDone: number) => void) | undefined,
    private readonly intervalMs = 100,
    private readonly follow?: { current: () => number; submitted: () => number },
  ) {
    this.last = performance.now();
  }

  report(bytesDone: number): void {
    if (this.cb === undefined) return;
    const now = performance.now();
    if (now - this.last < this.intervalMs || bytesDone <= this.lastValue) {
      this.scheduleTrailing();
      return;
    }
    this.last = now;
    this.lastValue = bytesDone;
    this.cb(bytesDone);
    this.scheduleTrailing();
  }

  private scheduleTrailing(delayMs = this.intervalMs): void {
    if (!this.follow || this.trailing !== undefined) return;
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      // A timer counts from the event loop's cached clock, so it can fire early by performance.now().
      const wait = this.intervalMs - (performance.now() - this.last);
      if (wait > 0) {
        this.scheduleTrailing(Math.ceil(wait));
        return;
      }
      const value = this.follow!.current();
      if (value > this.lastValue) {
        this.last = performance.now();
        this.lastValue = value;
        this.cb!(value);
      }
      if (this.follow!.current() < this.follow!.submitted()) this.scheduleTrailing();
    }, delayMs);
    this.trailing.unref?.();
  }

  /** Stops following (on failure or abort): nothing is reported any more. */
  stop(): void {
    if (this.trailing !== undefined) clearTimeout(this.trailing);
    this.trailing = undefined;
  }

  done(total: number): void {
    this.stop();
    if (this.cb === undefined) return;
    this.lastValue = total;
    this.cb(total);
  }
}
