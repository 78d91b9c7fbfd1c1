import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { DigestAlgorithm, DigestResult } from '../hashing/algorithms.js';

/** Every digest computed, per (image, backup storage, algorithm); a newer one replaces the older. */
export class DigestStore {
  constructor(private readonly db: Kysely<Database>) {}

  async record(
    imageUuid: string,
    backupStorageUuid: string,
    digests: DigestResult,
    source: 'import' | 'calculate',
    when = Date.now(),
    /** The transaction this belongs to, if any. */
    db: Kysely<Database> = this.db,
  ): Promise<void> {
    for (const [algorithm, digest] of Object.entries(digests) as Array<[DigestAlgorithm, string]>) {
      await db
        .insertInto('image_digest')
        .values({ image_uuid: imageUuid, backup_storage_uuid: backupStorageUuid, algorithm, digest, source, create_date: when })
        .onConflict((oc) =>
          oc.columns(['image_uuid', 'backup_storage_uuid', 'algorithm']).doUpdateSet({ digest, source, create_date: when }),
        )
        .execute();
    }
  }

  /** The recorded digest of one copy for one algorithm. */
  async get(imageUuid: string, backupStorageUuid: string, algorithm: DigestAlgorithm): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('image_digest')
      .select('digest')
      .where('image_uuid', '=', imageUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .where('algorithm', '=', algorithm)
      .executeTakeFirst();
    return row?.digest;
  }

  async forImage(imageUuid: string) {
    return this.db
      .selectFrom('image_digest')
      .selectAll()
      .where('image_uuid', '=', imageUuid)
      .orderBy('algorithm')
      .orderBy('backup_storage_uuid')
      .execute();
  }
}
