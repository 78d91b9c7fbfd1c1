/**
 * A realistic image library generated inside the database by one INSERT … SELECT per table (a recursive CTE
 * on SQLite, generate_series on PostgreSQL): a million images take seconds, not a million round trips.
 *
 * Image i (0-based) is created at T0 + i·STEP, so every attribute is a pseudo-random function of i and the
 * same library comes out of either database. The mix: 56% Ready, 35% Deleted (ZStack keeps them until
 * expunged), 9% Error; 8% Disabled; one copy per image and a second one on 30%, on storages of very different
 * sizes; a boot-mode system tag on 40% (UEFI on a tenth of all images), a user tag on 3%.
 */
import { sql } from 'kysely';
import type { Db } from '../src/db/connect.js';

export const T0 = Date.UTC(2021, 0, 1);
export const STEP = 150_000;
/** Name prefixes a private cloud's templates really use; the number after them repeats (~4 images a name). */
const PREFIXES = [
  'centos-7.9-x86_64',
  'ubuntu-22.04-server',
  'ubuntu-20.04-server',
  'debian-12-generic',
  'rocky-9.3',
  'win2019-datacenter',
  'win2022-standard',
  'kylin-v10-sp2',
  'uos-20-server',
  'alpine-3.19',
  'fedora-39-cloud',
  'opensuse-15.5',
  'oracle-linux-8.9',
  'centos-stream-9',
  'windows-10-pro',
  'data-disk',
];
/** Share of the copies each storage holds, in percent (cumulative bounds below). */
export const STORAGE_SHARES = [40, 25, 15, 12, 8];

/** A pseudo-random number in 0..mod-1 from i (integer arithmetic that SQLite and PostgreSQL do alike). */
const h = (mul: number, mod: number, i = 'i') => `(((${i} * ${mul}) % 1000003) % ${mod})`;

function caseOf(expr: string, bounds: number[], values: string[]): string {
  return `CASE ${bounds.map((b, k) => `WHEN ${expr} < ${b} THEN ${values[k]}`).join(' ')} ELSE ${values[values.length - 1]} END`;
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

const TABLES = ['image', 'image_backup_storage_ref', 'tag'];

/**
 * The secondary indexes of the seeded tables (the migrations' own definitions, read back from the catalog):
 * dropped before the bulk insert and built again after it, which is many times faster than keeping them up
 * to date row by row. Primary keys stay.
 */
async function secondaryIndexes(db: Db, kind: 'sqlite' | 'postgres'): Promise<Array<{ name: string; def: string }>> {
  const tables = TABLES.map(lit).join(', ');
  const { rows } =
    kind === 'sqlite'
      ? await sql
          .raw<{ name: string; def: string }>(
            `SELECT name, sql AS def FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (${tables})`,
          )
          .execute(db)
      : await sql
          .raw<{ name: string; def: string }>(
            `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN (${tables})
               AND indexname NOT IN (SELECT conname FROM pg_constraint)`,
          )
          .execute(db);
  return rows;
}

export async function bulkSeed(db: Db, kind: 'sqlite' | 'postgres', n: number, storages: string[]): Promise<void> {
  const indexes = await secondaryIndexes(db, kind);
  for (const { name } of indexes) await sql.raw(`DROP INDEX ${name}`).execute(db);
  await insertLibrary(db, kind, n, storages);
  for (const { def } of indexes) await sql.raw(def).execute(db);
}

async function insertLibrary(db: Db, kind: 'sqlite' | 'postgres', n: number, storages: string[]): Promise<void> {
  if (storages.length !== STORAGE_SHARES.length) throw new Error(`bulkSeed wants ${STORAGE_SHARES.length} storages`);
  const uuid = kind === 'sqlite' ? 'lower(hex(randomblob(16)))' : `replace(gen_random_uuid()::text, '-', '')`;
  const series =
    kind === 'sqlite'
      ? { with: `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ${n - 1}) `, from: 'FROM s' }
      : { with: '', from: `FROM generate_series(0::bigint, ${n - 1}) AS s(i)` };
  const status = caseOf(h(2654435761, 100), [56, 91], [lit('Ready'), lit('Deleted'), lit('Error')]);
  const prefix = `CASE ${h(40503, PREFIXES.length)} ${PREFIXES.map((p, k) => `WHEN ${k} THEN ${lit(p)}`).join(' ')} END`;
  const media = caseOf(h(69069, 10), [7, 9], [lit('RootVolumeTemplate'), lit('DataVolumeTemplate'), lit('ISO')]);
  const format = caseOf(h(69069, 10), [5, 7, 9], [lit('qcow2'), lit('raw'), lit('qcow2'), lit('iso')]);
  const size = `(${h(1103515245, 200)} + 1) * 1073741824`;
  await sql
    .raw(
      `${series.with}INSERT INTO image (uuid, name, description, state, status, size, actual_size, md5_sum, url, media_type,
         guest_os_type, type, platform, architecture, format, system, virtio, create_date, last_op_date)
       SELECT ${uuid}, ${prefix} || '-' || (i % 250000), NULL,
         CASE WHEN ${h(22695477, 100)} < 8 THEN 'Disabled' ELSE 'Enabled' END, ${status},
         ${size}, ${size} / (${h(134775813, 9)} + 2), NULL,
         'http://mirror.example/images/' || i || '.qcow2', ${media}, NULL, 'zstack',
         CASE WHEN ${h(40503, PREFIXES.length)} IN (5, 6, 14) THEN 'Windows' ELSE 'Linux' END,
         CASE WHEN ${h(214013, 10)} = 0 THEN 'aarch64' ELSE 'x86_64' END, ${format}, 0, 1,
         ${T0} + i * ${STEP}, ${T0} + i * ${STEP} + ${h(16807, 86400000)}
       ${series.from}`,
    )
    .execute(db);

  // Copies: one on a storage chosen by the shares, a second one (next storage) on 30% of the images.
  const i = `((create_date - ${T0}) / ${STEP})`;
  let acc = 0;
  const bounds = STORAGE_SHARES.map((s) => (acc += s));
  const first = caseOf(
    h(48271, 100, i),
    bounds.slice(0, -1),
    bounds.map((_, k) => lit(storages[k]!)),
  );
  const second = caseOf(
    h(48271, 100, i),
    bounds.slice(0, -1),
    bounds.map((_, k) => lit(storages[(k + 1) % storages.length]!)),
  );
  for (const [bs, where] of [
    [first, ''],
    [second, `WHERE ${h(16807, 100, i)} < 30`],
  ] as const) {
    await sql
      .raw(
        `INSERT INTO image_backup_storage_ref (image_uuid, backup_storage_uuid, install_path, status, export_md5_sum, export_url,
           create_date, last_op_date, deleted_date, deletion_policy)
         SELECT uuid, ${bs}, '/zimage/images/' || uuid || '/' || uuid || '.template',
           CASE WHEN status = 'Deleted' THEN 'Deleted' ELSE 'Ready' END, NULL, NULL, create_date, last_op_date,
           CASE WHEN status = 'Deleted' THEN last_op_date END, CASE WHEN status = 'Deleted' THEN 'Delay' END
         FROM image ${where}`,
      )
      .execute(db);
  }

  // Tags: bootMode on 40% (UEFI on a quarter of those), a user tag on 3%.
  const tag = `INSERT INTO tag (uuid, resource_uuid, resource_type, tag, type, create_date, inherent, last_op_date)`;
  await sql
    .raw(
      `${tag} SELECT ${uuid}, uuid, 'ImageVO', CASE WHEN ${h(65539, 4, i)} = 0 THEN 'bootMode::UEFI' ELSE 'bootMode::Legacy' END,
         'System', create_date, 0, create_date FROM image WHERE ${h(1664525, 100, i)} < 40`,
    )
    .execute(db);
  await sql
    .raw(
      `${tag} SELECT ${uuid}, uuid, 'ImageVO', 'team-' || ${h(22695477, 40, i)}, 'User', create_date, 0, create_date
       FROM image WHERE ${h(1013904223, 100, i)} < 3`,
    )
    .execute(db);
}
