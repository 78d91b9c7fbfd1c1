import type { Db } from '../src/db/connect.js';
import type { ImageBackupStorageRefTable, ImageTable } from '../src/db/schema.js';
import { newUuid } from '../src/lib/ids.js';

/** Fills the database with `n` images (and a ref each on one of `storages`) straight through SQL. */
export async function seedImages(db: Db, n: number, storages: string[]): Promise<void> {
  const statuses = ['Ready', 'Ready', 'Ready', 'Deleted', 'Error'];
  const t0 = Date.now() - n * 1000;
  for (let start = 0; start < n; start += 500) {
    const images: ImageTable[] = [];
    const refs: ImageBackupStorageRefTable[] = [];
    for (let i = start; i < Math.min(n, start + 500); i++) {
      const uuid = newUuid();
      const bs = storages[i % storages.length]!;
      images.push({
        uuid,
        name: `img-${i}`,
        description: null,
        state: i % 7 === 0 ? 'Disabled' : 'Enabled',
        status: statuses[i % statuses.length]!,
        size: (i % 100) * 1024 ** 3,
        actual_size: (i % 100) * 1024 ** 2,
        md5_sum: null,
        url: `http://mirror.example/img-${i}.qcow2`,
        media_type: i % 3 ? 'RootVolumeTemplate' : 'DataVolumeTemplate',
        guest_os_type: null,
        type: 'zstack',
        platform: 'Linux',
        architecture: 'x86_64',
        format: 'qcow2',
        system: 0,
        virtio: 1,
        create_date: t0 + i * 1000,
        last_op_date: t0 + i * 1000,
      });
      refs.push({
        image_uuid: uuid,
        backup_storage_uuid: bs,
        install_path: `/bs/images/${uuid}/${uuid}.template`,
        status: 'Ready',
        export_md5_sum: null,
        export_url: null,
        create_date: t0 + i * 1000,
        last_op_date: t0 + i * 1000,
      });
    }
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('image').values(images).execute();
      await trx.insertInto('image_backup_storage_ref').values(refs).execute();
    });
  }
}

/** The query shapes the benchmark times and the plan test checks. */
export const QUERY_SHAPES: Array<{ label: string; query: Record<string, string | string[]> }> = [
  { label: 'status=Ready, newest first, page 6 of 20', query: { q: 'status=Ready', sort: '-createDate', limit: '20', start: '100' } },
  { label: 'state=Enabled and status=Ready, count + page', query: { q: ['state=Enabled', 'status=Ready'], sort: '-createDate', limit: '50', replyWithCount: 'true' } },
  { label: 'name=img-1234', query: { q: 'name=img-1234' } },
];
