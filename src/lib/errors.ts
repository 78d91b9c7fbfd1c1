/**
 * ZStack's ErrorCode model. Every failure that reaches a client is one of these; `details` tells the user
 * what happened and what to fix.
 */
export const ERROR_DESCRIPTIONS = {
  'SYS.1000': 'An internal error happened in system',
  'SYS.1001': 'A message or a operation timeout',
  'SYS.1002': 'Unable to create a resource',
  'SYS.1003': 'A resource can not be found',
  'SYS.1004': 'Unable to delete a resource',
  'SYS.1005': 'Unable to change resource state',
  'SYS.1006': 'An operation failed',
  'SYS.1007': 'One or more API argument is invalid',
  'SYS.1013': "The resource doesn't have capability to proceed an operation",
  'SYS.1014': 'The operation is not implemented or not supported yet',
  'SYS.1015': 'Cannot make a HTTP request',
  'SYS.1016': 'Cannot do an IO operation(e.g. network IO error, file IO error)',
  'SYS.1017': 'A message or a operation cancelled',
  'ID.1000': 'Unable to authenticate a user',
  'ID.1001': 'The session is invalid, either wrong session id or the session has been expired',
  'ID.1002': "The user doesn't have permission to perform the operation",
  'ID.1006': 'Max number of active sessions exceeded',
  'BS.1000': 'Unable to download an image to backup storage',
  'BS.1500': 'Unable to connect a backup storage',
  'BS.SFTP.1000': 'Unable to reconnect to sftp backup storage',
} as const;

export type ErrorCodeName = keyof typeof ERROR_DESCRIPTIONS;

/** The JSON shape of ZStack's ErrorCode (nulls omitted). */
export interface ErrorCodeBody {
  code: string;
  description: string;
  details: string;
  elaboration?: string;
  location?: string;
  cost?: string;
  cause?: ErrorCodeBody;
  opaque?: Record<string, unknown>;
}

export class ZStackError extends Error {
  constructor(
    readonly code: ErrorCodeName,
    readonly details: string,
    override readonly cause?: ZStackError,
    readonly opaque?: Record<string, unknown>,
  ) {
    super(details);
    this.name = 'ZStackError';
  }

  /** A security event this failure stands for (refused import, unsafe image): logged once where the call ends. */
  audit?: { event: string } & Record<string, unknown>;

  /** Marks this failure as a security event with the fields to log (never secrets). */
  withAudit(event: string, fields: Record<string, unknown>): this {
    this.audit = { ...fields, event };
    return this;
  }

  toBody(): ErrorCodeBody {
    const body: ErrorCodeBody = { code: this.code, description: ERROR_DESCRIPTIONS[this.code], details: this.details };
    if (this.cause) body.cause = this.cause.toBody();
    if (this.opaque) body.opaque = this.opaque;
    return body;
  }
}

/**
 * What is wrong with a request that is refused outside ZStack's ErrorCode model (the REST layer's plain-text
 * answers, the upload data plane): services name it, src/api/http-status.ts maps it to a status code.
 */
export type RefusalKind =
  | 'invalid' // the request itself is malformed
  | 'not-found' // nothing at this address
  | 'conflict' // the resource is in another state (already complete, busy, another offset)
  | 'gone' // it existed and was removed
  | 'too-large' // more bytes than there is room for
  | 'unprocessable' // the bytes arrived but were refused (checksum, format, safety)
  | 'misdirected' // this node cannot serve it; the text names the node that can
  | 'unavailable' // the storage failed; it may work later
  | 'no-space'; // the storage ran out of space

/** A request refused with a plain-text reason; `offset` is the bytes an upload holds, when the client needs it. */
export class Refusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    message: string,
    readonly offset?: number,
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

/**
 * Failure of a storage driver or import source, with a reason fit for a user. Services turn it into a
 * ZStackError with the right code.
 */
export class StorageError extends Error {
  constructor(
    readonly kind: 'unreachable' | 'not-found' | 'no-space' | 'permission' | 'io' | 'invalid' | 'unsupported',
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export const isAbortError = (err: unknown): boolean =>
  err instanceof Error && (err.name === 'AbortError' || (err as NodeJS.ErrnoException).code === 'ABORT_ERR');
