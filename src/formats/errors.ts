/** The inspector's errors: InspectError is what `inspect()` rejects with; TruncatedError stays inside. */

export type InspectErrorCode = 'BUDGET_EXCEEDED' | 'READ_FAILED' | 'BAD_SOURCE' | 'BAD_OPTIONS' | 'INTERNAL';

/** The only error `inspect()` ever rejects with. */
export class InspectError extends Error {
  override readonly name = 'InspectError';
  constructor(
    readonly code: InspectErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Thrown by field accessors and format parsers when the bytes a header needs are not in the file.
 * Internal: `inspect()` turns it into a `<format>-truncated` safety failure.
 */
export class TruncatedError extends Error {
  override readonly name = 'TruncatedError';
}
