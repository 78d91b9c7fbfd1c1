import type { RefusalKind } from '../lib/errors.js';

/** The HTTP status of each kind of refusal a service may throw (only src/api knows about status codes). */
export const REFUSAL_STATUS: Readonly<Record<RefusalKind, number>> = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  gone: 410,
  'too-large': 413,
  misdirected: 421,
  unprocessable: 422,
  unavailable: 503,
  'no-space': 507,
};
