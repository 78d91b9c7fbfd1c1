/**
 * A memoised async fixture: the first call runs `make`, every later call answers the same promise. Each test
 * awaits what it needs, so it gets it whichever test ran first, and when it runs alone (--test-name-pattern).
 */
export function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}
