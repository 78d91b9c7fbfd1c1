import type { Db } from '../db/connect.js';

/**
 * A copy whose stored bytes were found unsafe (or missing) is `Error` — one of ZStack's ImageStatus values,
 * so clients show it — and is neither exported nor hashed until a SyncImageSize finds it sound again.
 * The image follows its copies: `Error` while none is Ready, `Ready` again once one is.
 */
export async function setCopyStatus(db: Db, imageUuid: string, backupStorageUuid: string, status: 'Ready' | 'Error'): Promise<void> {
  const now = Date.now();
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('image_backup_storage_ref')
      .set({ status, last_op_date: now })
      .where('image_uuid', '=', imageUuid)
      .where('backup_storage_uuid', '=', backupStorageUuid)
      .where('status', 'in', ['Ready', 'Error'])
      .execute();
    const refs = await trx.selectFrom('image_backup_storage_ref').select('status').where('image_uuid', '=', imageUuid).execute();
    const imageStatus = refs.some((r) => r.status === 'Ready') ? 'Ready' : refs.some((r) => r.status === 'Error') ? 'Error' : undefined;
    if (imageStatus) {
      await trx
        .updateTable('image')
        .set({ status: imageStatus, last_op_date: now })
        .where('uuid', '=', imageUuid)
        .where('status', 'in', ['Ready', 'Error'])
        .where('status', '!=', imageStatus)
        .execute();
    }
  });
}
