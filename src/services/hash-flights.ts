import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';

/** The node's heavy-job slots (the job runner's): a flight holds one for its read, its callers none. */
export interface HeavySlots {
  acquireHeavy(signal: AbortSignal): Promise<() => void>;
}

/** One caller of a shared read: its own algorithm, cancel signal and progress. */
export interface FlightCaller {
  algorithm: DigestAlgorithm;
  signal: AbortSignal;
  progress(done: number, total: number): void;
  /** Called once, when the read this caller waits on starts (at once if it already runs). */
  running(): void;
}

/** Reads the copy once and computes every digest asked for; `signal` fires when no caller waits any more. */
export type FlightRead = (
  algorithms: DigestAlgorithm[],
  signal: AbortSignal,
  progress: (done: number, total: number) => void,
) => Promise<DigestResult>;

interface Waiter {
  caller: FlightCaller;
  resolve(result: DigestResult): void;
  reject(err: unknown): void;
  detach(): void;
}

/** One read of one copy: queued (its digest set may still grow) until it gets a heavy slot, then running. */
class Flight {
  readonly algorithms: Set<DigestAlgorithm>;
  readonly waiters = new Set<Waiter>();
  readonly controller = new AbortController();
  running = false;
  done = 0;
  total = 0;

  constructor(algorithm: DigestAlgorithm) {
    this.algorithms = new Set([algorithm]);
  }
}

/**
 * Single flight for CalculateImageHash on this node. A caller whose copy (key) is already being read for
 * its algorithm waits on that read; a caller for another algorithm joins a read still queued (its digest is
 * added to the set) or else starts a read of its own. The read ends early only when its last caller leaves
 * (cancel or timeout). Callers take no heavy-job slot; each read takes one.
 */
export class HashFlights {
  private readonly byKey = new Map<string, Flight[]>();
  /** Reads started since the process began (for tests and diagnostics). */
  readsStarted = 0;

  constructor(private readonly slots?: HeavySlots) {}

  /** The digests of the read `caller` waits on (its own algorithm among them). */
  digest(key: string, caller: FlightCaller, read: FlightRead): Promise<DigestResult> {
    if (caller.signal.aborted) return Promise.reject(caller.signal.reason);
    const flights = this.byKey.get(key) ?? [];
    let flight = flights.find((f) => f.algorithms.has(caller.algorithm)) ?? flights.find((f) => !f.running);
    if (flight) {
      flight.algorithms.add(caller.algorithm);
    } else {
      flight = new Flight(caller.algorithm);
      flights.push(flight);
      this.byKey.set(key, flights);
      void this.fly(key, flight, read);
    }
    return this.wait(key, flight, caller);
  }

  /** Reads in flight or queued on this node. */
  get size(): number {
    let n = 0;
    for (const list of this.byKey.values()) n += list.length;
    return n;
  }

  /** Callers waiting on those reads. */
  get waiting(): number {
    let n = 0;
    for (const list of this.byKey.values()) for (const f of list) n += f.waiters.size;
    return n;
  }

  private wait(key: string, flight: Flight, caller: FlightCaller): Promise<DigestResult> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        flight.waiters.delete(waiter);
        reject(caller.signal.reason);
        if (flight.waiters.size === 0) {
          this.remove(key, flight);
          flight.controller.abort(caller.signal.reason);
        } else if (!flight.running && ![...flight.waiters].some((w) => w.caller.algorithm === caller.algorithm)) {
          flight.algorithms.delete(caller.algorithm); // nobody else wants it: not computed
        }
      };
      const waiter: Waiter = { caller, resolve, reject, detach: () => caller.signal.removeEventListener('abort', onAbort) };
      flight.waiters.add(waiter);
      caller.signal.addEventListener('abort', onAbort, { once: true });
      if (flight.running) {
        caller.running();
        if (flight.total > 0) caller.progress(flight.done, flight.total);
      }
    });
  }

  private async fly(key: string, flight: Flight, read: FlightRead): Promise<void> {
    const { signal } = flight.controller;
    let release: (() => void) | undefined;
    let outcome: { ok: true; result: DigestResult } | { ok: false; err: unknown };
    try {
      release = await this.slots?.acquireHeavy(signal);
      signal.throwIfAborted();
      flight.running = true;
      this.readsStarted++;
      for (const w of flight.waiters) w.caller.running();
      const result = await read([...flight.algorithms], signal, (done, total) => {
        flight.done = done;
        flight.total = total;
        for (const w of flight.waiters) w.caller.progress(done, total);
      });
      outcome = { ok: true, result };
    } catch (err) {
      outcome = { ok: false, err };
    } finally {
      release?.();
    }
    this.remove(key, flight); // a later caller starts a fresh read
    for (const w of flight.waiters) {
      w.detach();
      if (outcome.ok) w.resolve(outcome.result);
      else w.reject(outcome.err);
    }
    flight.waiters.clear();
  }

  private remove(key: string, flight: Flight): void {
    const flights = this.byKey.get(key);
    if (!flights) return;
    const i = flights.indexOf(flight);
    if (i >= 0) flights.splice(i, 1);
    if (flights.length === 0) this.byKey.delete(key);
  }
}
