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
  ): Promise<void> {
    for (const [algorithm, digest] of Object.entries(digests) as Array<[DigestAlgorithm, string]>) {
      await this.db
        .insertInto('image_digest')
        .values({ image_uuid: imageUuid, backup_storage_uuid: backupStorageUuid, algorithm, digest, source, create_date: when })
        .onConflict((oc) =>
          oc.columns(['image_uuid', 'backup_storage_uuid', 'algorithm']).doUpdateSet({ digest, source, create_date: when }),
        )
        .execute();
    }
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
