import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { createImageTally } from './image-tally.js';

/** Migrations in code, run at start-up. Column types are chosen to mean the same in SQLite and PostgreSQL. */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('account')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('session')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('account_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('user_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('user_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('expired_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('session_account').on('session').column('account_uuid').execute();
      await db.schema
        .createTable('backup_storage')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'varchar(2048)')
        .addColumn('url', 'varchar(2048)', (c) => c.notNull())
        .addColumn('type', 'varchar(64)', (c) => c.notNull())
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('status', 'varchar(32)', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('total_capacity', 'bigint', (c) => c.notNull())
        .addColumn('available_capacity', 'bigint', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('image')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'varchar(2048)')
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('status', 'varchar(32)', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('actual_size', 'bigint', (c) => c.notNull())
        .addColumn('md5_sum', 'varchar(255)')
        .addColumn('url', 'varchar(2048)', (c) => c.notNull())
        .addColumn('media_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('guest_os_type', 'varchar(255)')
        .addColumn('type', 'varchar(64)', (c) => c.notNull())
        .addColumn('platform', 'varchar(64)')
        .addColumn('architecture', 'varchar(32)')
        .addColumn('format', 'varchar(32)', (c) => c.notNull())
        .addColumn('system', 'integer', (c) => c.notNull())
        .addColumn('virtio', 'integer')
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('image_name').on('image').column('name').execute();
      await db.schema.createIndex('image_create_date').on('image').column('create_date').execute();
      await db.schema
        .createTable('image_backup_storage_ref')
        .addColumn('image_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('backup_storage_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('install_path', 'varchar(2048)', (c) => c.notNull())
        .addColumn('status', 'varchar(32)', (c) => c.notNull())
        .addColumn('export_md5_sum', 'varchar(255)')
        .addColumn('export_url', 'varchar(2048)')
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_backup_storage_ref_pk', ['image_uuid', 'backup_storage_uuid'])
        .execute();
      await db.schema.createIndex('ref_backup_storage').on('image_backup_storage_ref').column('backup_storage_uuid').execute();
      await db.schema
        .createTable('image_digest')
        .addColumn('image_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('backup_storage_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('algorithm', 'varchar(32)', (c) => c.notNull())
        .addColumn('digest', 'varchar(255)', (c) => c.notNull())
        .addColumn('source', 'varchar(32)', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_digest_pk', ['image_uuid', 'backup_storage_uuid', 'algorithm'])
        .execute();
      await db.schema
        .createTable('tag')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('resource_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('resource_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('tag', 'varchar(2048)', (c) => c.notNull())
        .addColumn('type', 'varchar(16)', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('tag_resource').on('tag').column('resource_uuid').execute();
      await db.schema
        .createTable('api_job')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('api_name', 'varchar(128)', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('result', 'text')
        .addColumn('owner_node', 'varchar(64)', (c) => c.notNull())
        .addColumn('resource_uuid', 'varchar(32)')
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('start_date', 'bigint')
        .addColumn('finish_date', 'bigint')
        .addColumn('deadline', 'bigint', (c) => c.notNull())
        .addColumn('bytes_done', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_total', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('throughput', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('web_hook', 'varchar(2048)')
        .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('api_job_state').on('api_job').columns(['state', 'owner_node']).execute();
      await db.schema.createIndex('api_job_finish').on('api_job').column('finish_date').execute();
    },
  },
  '0002_image_deletion': {
    async up(db: Kysely<any>) {
      // When a copy was deleted and under which policy: the expunger needs both.
      await db.schema.alterTable('image_backup_storage_ref').addColumn('deleted_date', 'bigint').execute();
      await db.schema.alterTable('image_backup_storage_ref').addColumn('deletion_policy', 'varchar(16)').execute();
      await db.schema.createIndex('ref_status_deleted').on('image_backup_storage_ref').columns(['status', 'deleted_date']).execute();
    },
  },
  '0003_query_indexes': {
    async up(db: Kysely<any>) {
      // QueryImage's usual shapes: by status (or state) newest first, by tag, by storage.
      await db.schema.createIndex('image_status_create_date').on('image').columns(['status', 'create_date']).execute();
      await db.schema.createIndex('image_state_create_date').on('image').columns(['state', 'create_date']).execute();
      await db.schema.createIndex('tag_type_tag').on('tag').columns(['type', 'tag', 'resource_uuid']).execute();
    },
  },
  '0004_access_keys_tags_zones': {
    async up(db: Kysely<any>) {
      // Tags as ZStack's SystemTagVO/UserTagVO: inherent flag and last change date.
      await db.schema
        .alterTable('tag')
        .addColumn('inherent', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('tag').addColumn('last_op_date', 'bigint').execute();
      await db
        .updateTable('tag')
        .set((eb: any) => ({ last_op_date: eb.ref('create_date') }))
        .execute();
      await db.schema
        .createTable('access_key')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('account_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('user_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('access_key_id', 'varchar(128)', (c) => c.notNull().unique())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('description', 'varchar(2048)')
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('access_key_account').on('access_key').column('account_uuid').execute();
      await db.schema
        .createTable('zone')
        .addColumn('uuid', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'varchar(2048)')
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('type', 'varchar(64)', (c) => c.notNull())
        .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('backup_storage_zone_ref')
        .addColumn('backup_storage_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('zone_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .addColumn('last_op_date', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('backup_storage_zone_ref_pk', ['backup_storage_uuid', 'zone_uuid'])
        .execute();
      await db.schema.createIndex('bs_zone_ref_zone').on('backup_storage_zone_ref').column('zone_uuid').execute();
    },
  },
  '0005_query_indexes_million': {
    async up(db: Kysely<any>) {
      // QueryImage on a million images: state and status together, newest first (also the covering index of
      // their count); the EXISTS probe of a tag condition by image, type and tag.
      await db.schema.createIndex('image_state_status_create_date').on('image').columns(['state', 'status', 'create_date']).execute();
      await db.schema.createIndex('tag_resource_type_tag').on('tag').columns(['resource_uuid', 'type', 'tag']).execute();
      // count=true / replyWithCount by state and status without counting a million index entries.
      await createImageTally(db);
    },
  },
  '0006_cluster_nodes': {
    async up(db: Kysely<any>) {
      // Node membership: each node heartbeats its row; a row older than the lease is a dead node.
      await db.schema
        .createTable('node')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('address', 'varchar(2048)', (c) => c.notNull())
        .addColumn('version', 'varchar(64)', (c) => c.notNull())
        .addColumn('started', 'bigint', (c) => c.notNull())
        .addColumn('last_seen', 'bigint', (c) => c.notNull())
        .execute();
      // Cluster-wide leases by name (periodic work runs on the holder of 'periodic').
      await db.schema
        .createTable('cluster_lease')
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('holder', 'varchar(64)', (c) => c.notNull())
        .addColumn('lease_until', 'bigint', (c) => c.notNull())
        .execute();
      // Leased jobs: lease_until 0 = waiting in the cluster queue (claimable), else held by owner_node until then;
      // attempt fences a node that lost the lease; request is the sealed call, kept to redo it elsewhere.
      await db.schema
        .alterTable('api_job')
        .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('api_job')
        .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('api_job')
        .addColumn('heavy', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('api_job').addColumn('request', 'text').execute();
      await db.schema.alterTable('api_job').addColumn('affinity_node', 'varchar(64)').execute();
      await db.schema.alterTable('api_job').addColumn('previous_node', 'varchar(64)').execute();
      await db.schema.createIndex('api_job_lease').on('api_job').columns(['state', 'lease_until']).execute();
      // A local-directory storage lives on one node's disk: its jobs are claimed by that node only.
      await db.schema.alterTable('backup_storage').addColumn('owner_node', 'varchar(64)').execute();
    },
  },
  '0007_upload_state': {
    async up(db: Kysely<any>) {
      // AddImage upload:// state shared by every node: any node may take the next PUT (see upload-state.ts).
      await db.schema
        .createTable('upload_state')
        .addColumn('token', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('image_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('image_name', 'varchar(255)', (c) => c.notNull())
        .addColumn('job_uuid', 'varchar(32)', (c) => c.notNull())
        .addColumn('url', 'varchar(2048)', (c) => c.notNull())
        .addColumn('storage_uuids', 'text', (c) => c.notNull())
        .addColumn('temp_names', 'text')
        .addColumn('expected_digests', 'text', (c) => c.notNull())
        .addColumn('declared_format', 'varchar(32)')
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('received', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('total_size', 'bigint')
        .addColumn('size_limit', 'bigint', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('owner_node', 'varchar(64)', (c) => c.notNull())
        .addColumn('writer', 'varchar(64)')
        .addColumn('lease_holder', 'varchar(64)')
        .addColumn('lease_until', 'bigint')
        .addColumn('last_activity', 'bigint', (c) => c.notNull())
        .addColumn('ended_date', 'bigint')
        .addColumn('create_date', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('upload_state_image').on('upload_state').column('image_uuid').execute();
      await db.schema.createIndex('upload_state_state').on('upload_state').columns(['state', 'last_activity']).execute();
    },
  },
};

/** The names of every migration this build knows, in order (a schema version for caches of test data). */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations);

class CodeMigrationProvider implements MigrationProvider {
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrations);
  }
}

/** Migrations this build knows but the database has not applied (one trivial query: a readiness check). */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
  const applied = new Set(rows.map((r) => r.name));
  return Object.keys(migrations).filter((name) => !applied.has(name));
}

/** Brings the schema up to date; throws with the failing migration's error. */
export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String((error as Error)?.message ?? error)}`);
  }
}
