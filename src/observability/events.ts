/**
 * What services report for metrics. Services depend on this interface only (never on prom-client); the
 * Prometheus implementation lives in metrics.ts and is wired in at start-up. Imports nothing.
 */
export interface ServiceEvents {
  /** Bytes written into a storage of this type by an import (URL or upload), counted once per storage. */
  bytesImported(storageType: string, bytes: number): void;
  /** A CalculateImageHash read `bytes` on a storage of this type in `seconds`. */
  bytesHashed(storageType: string, bytes: number, seconds: number): void;
  /** Bytes of an exported image sent to a client from a storage of this type. */
  bytesExported(storageType: string, bytes: number): void;
  /** A job left the queue and started running. */
  jobStarted(api: string): void;
  /** A job ended (Succeeded or Failed) after `seconds` of running. */
  jobFinished(api: string, state: 'Succeeded' | 'Failed', seconds: number): void;
  /** A security event was logged (refused import, unsafe image, failed login, …). */
  securityEvent(event: string): void;
}

/** Reports nothing: the default when no metrics are wired (tests, tools). */
export const NO_EVENTS: ServiceEvents = {
  bytesImported: () => {},
  bytesHashed: () => {},
  bytesExported: () => {},
  jobStarted: () => {},
  jobFinished: () => {},
  securityEvent: () => {},
};
