/** The longest delay a Node timer holds: longer ones fire after 1 ms (with only a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
}

/**
 * setTimeout for any delay (unref'd): delays beyond {@link MAX_TIMER_MS} are chained in steps, so they
 * never overflow into an immediate call. An infinite delay never fires.
 */
export function setLongTimeout(fn: () => void, ms: number): LongTimer {
  const deadline = Date.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;
  const arm = (left: number): void => {
    timer = setTimeout(
      () => {
        const rest = deadline - Date.now();
        if (rest > 0) arm(rest);
        else if (!cleared) fn();
      },
      Math.min(Math.max(left, 0), MAX_TIMER_MS),
    );
    timer.unref();
  };
  arm(ms);
  return {
    clear() {
      cleared = true;
      clearTimeout(timer);
    },
  };
}
