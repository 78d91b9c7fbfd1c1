import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { StorageError } from '../../lib/errors.js';
import type { ImportTarget } from '../driver.js';

/** Where an import stands: bytes still coming (open), visible under installPath (committed), or gone (aborted). */
export type ImportState = 'open' | 'committed' | 'aborted';

/**
 * What every driver's import shares: the states and the commit/abort protocol. commit() ends the stream,
 * waits for the writer, then installs the bytes; any failure on the way removes every partial byte before
 * it is reported. abort() removes them (and waits for a removal already under way). Both are idempotent;
 * abort() after commit() does nothing, commit() after abort() is refused.
 *
 * A driver supplies the stream and three steps: writerDone (optional), install and discardPartial.
 */
export abstract class ImportBase implements ImportTarget {
  abstract readonly stream: Writable;
  protected state: ImportState = 'open';
  /** The writer's failure, once known; commit() reports it. */
  protected failure: StorageError | undefined;
  private cleaning: Promise<void> | undefined;
  /** A resumable import whose bytes were left for a later resume (see suspendWith). */
  protected suspended = false;

  constructor(readonly installPath: string) {}

  /** After the stream has finished: waits until the writer has stored every byte (its failure is a write failure). */
  protected async writerDone(): Promise<void> {}
  /** Makes the written bytes visible under installPath. */
  protected abstract install(): Promise<void>;
  /** Stops the writer and removes every partial byte; `err` (if any) destroys the stream with it. */
  protected abstract discardPartial(err?: Error): Promise<void>;
  /** The error reported for a failure while writing or installing (the storage's message for it). */
  protected abstract describeFailure(err: unknown, phase: 'writing' | 'committing'): unknown;

  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.failure) {
      await this.cleanupQuietly();
      throw this.failure;
    }
    if (this.state === 'aborted') throw new StorageError('invalid', `import of ${this.installPath} was aborted; it cannot be committed.`);
    try {
      await this.endStream();
      await this.writerDone();
    } catch (err) {
      await this.cleanupQuietly();
      throw this.failure ?? this.describeFailure(err, 'writing');
    }
    try {
      await this.install();
    } catch (err) {
      await this.cleanupQuietly();
      throw this.describeFailure(err, 'committing');
    }
    this.state = 'committed';
  }

  /**
   * For resumable imports: ends the stream, lets `settle` make the written bytes durable, and leaves them for a
   * later resume (suspended); a failure on the way removes them and is reported as `describe` says.
   */
  protected async suspendWith(settle: () => Promise<void>, describe: (err: unknown) => unknown): Promise<void> {
    if (this.state !== 'open' || this.suspended) return;
    if (this.failure) throw this.failure;
    try {
      await this.endStream();
      await settle();
    } catch (err) {
      await this.cleanupQuietly();
      throw this.failure ?? describe(err);
    }
    this.suspended = true;
  }

  /** Ends the stream and waits until the writer has taken every byte. */
  private async endStream(): Promise<void> {
    if (this.stream.writableFinished) return;
    if (!this.stream.writableEnded) this.stream.end();
    await finished(this.stream);
  }

  async abort(): Promise<void> {
    if (this.state === 'committed') return;
    await this.cleanup();
  }

  /** Moves to 'aborted' and removes the partial bytes, once: later calls wait for the same removal. */
  protected cleanup(err?: Error): Promise<void> {
    this.state = 'aborted';
    this.cleaning ??= this.discardPartial(err);
    return this.cleaning;
  }

  /** The first failure is the one to report: a failed removal after it is not. */
  private async cleanupQuietly(): Promise<void> {
    await this.cleanup().catch(() => undefined);
  }
}
