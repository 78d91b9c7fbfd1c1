import { createHash } from 'node:crypto';
import { LruMap } from '../lib/lru.js';
import { MAX_TIMER_MS } from '../lib/timers.js';

/** Limits on failed logins (counters are per node: each zimage process counts what it sees). */
export interface LoginThrottleLimits {
  /** Failed logins from one client address within `windowSec` before that address is refused. */
  maxFailures: number;
  windowSec: number;
  /** First refusal period; it doubles at each further failure until a quiet spell, up to `maxBackoffSec`. */
  backoffSec: number;
  maxBackoffSec: number;
  /** Delay added to each attempt on an account once it has had `maxFailures` failures in the window (from any address); doubles per further failure. 0 disables. */
  accountDelayMs: number;
  accountMaxDelayMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginThrottleLimits = {
  maxFailures: 5,
  windowSec: 300,
  backoffSec: 60,
  maxBackoffSec: 3600,
  accountDelayMs: 500,
  accountMaxDelayMs: 10_000,
};

interface AddressRecord {
  failures: number[];
  /** Refusals so far; each further failure before a quiet spell refuses again, for twice as long. */
  strikes: number;
  blockedUntil: number;
  lastFailure: number;
}

/** Bound on tracked addresses and account names: a flood of made-up ones cannot grow memory. */
const TRACKED = 100_000;

/** Account names as keys, long ones hashed so that no key is large. */
const accountKey = (name: string): string => (name.length <= 256 ? name : `sha256:${createHash('sha256').update(name).digest('hex')}`);

/**
 * Slows password guessing without letting anyone lock the real owner out: a client address with too many
 * failures is refused for a growing period (its password is not even checked), while failures on one
 * account from many addresses only delay further attempts on that account, up to a cap.
 */
export class LoginThrottle {
  private readonly addresses = new LruMap<string, AddressRecord>(TRACKED);
  private readonly accounts = new LruMap<string, number[]>(TRACKED);

  constructor(
    readonly limits: LoginThrottleLimits = DEFAULT_LOGIN_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    if (!(limits.maxFailures >= 1) || !(limits.windowSec >= 1))
      throw new Error('login throttling needs maxFailures and windowSec of at least 1');
  }

  /** Whole seconds `address` must still wait before its next attempt; 0 when it may try. */
  retryAfterSec(address: string): number {
    const r = this.addresses.peek(address);
    const left = r ? r.blockedUntil - this.now() : 0;
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Milliseconds to wait before checking a password for `account`. */
  accountDelayMs(account: string): number {
    const { maxFailures, accountDelayMs, accountMaxDelayMs } = this.limits;
    const failures = this.recent(this.accounts.peek(accountKey(account)) ?? []).length;
    if (accountDelayMs <= 0 || failures < maxFailures) return 0;
    const delay = accountDelayMs * 2 ** Math.min(failures - maxFailures, 30);
    return Math.min(delay, accountMaxDelayMs, MAX_TIMER_MS);
  }

  /** Records a failed attempt; returns the seconds the address is now refused for (0: not refused). */
  failed(account: string, address: string): number {
    const now = this.now();
    const { maxFailures, backoffSec, maxBackoffSec, windowSec } = this.limits;
    const key = accountKey(account);
    const list = this.recent(this.accounts.peek(key) ?? []);
    list.push(now);
    if (list.length > maxFailures + 32) list.splice(0, list.length - (maxFailures + 32));
    this.accounts.set(key, list);

    const r = this.addresses.get(address) ?? { failures: [], strikes: 0, blockedUntil: 0, lastFailure: 0 };
    // A quiet spell (the longest refusal plus a window without failures) forgives earlier refusals.
    if (r.strikes > 0 && now - r.lastFailure > (maxBackoffSec + windowSec) * 1000) r.strikes = 0;
    r.failures = this.recent(r.failures);
    r.failures.push(now);
    r.lastFailure = now;
    if (r.strikes > 0 || r.failures.length >= maxFailures) {
      r.strikes++;
      const seconds = Math.min(backoffSec * 2 ** Math.min(r.strikes - 1, 30), maxBackoffSec);
      r.blockedUntil = now + seconds * 1000;
      r.failures = [];
    }
    this.addresses.set(address, r);
    return this.retryAfterSec(address);
  }

  /** A successful login clears the address's record (not the account's: its failures may come from others). */
  succeeded(address: string): void {
    this.addresses.delete(address);
  }

  private recent(times: number[]): number[] {
    const since = this.now() - this.limits.windowSec * 1000;
    return times.filter((t) => t > since);
  }
}
