import { type Kysely, sql } from 'kysely';

export const isSqlite = (db: Kysely<any>): boolean => db.getExecutor().adapter.constructor.name.toLowerCase().includes('sqlite');

/**
 * Image counts per (state, status) as signed deltas (see services/image-tally.ts): the table, its first
 * contents and the triggers that append +1 / -1 rows on every insert, delete and state or status change.
 */
export async function createImageTally(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('image_tally')
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(32)', (c) => c.notNull())
    .addColumn('n', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('image_tally_state_status').on('image_tally').columns(['state', 'status', 'n']).execute();
  await sql`INSERT INTO image_tally (state, status, n) SELECT state, status, COUNT(*) FROM image GROUP BY state, status`.execute(db);
  if (isSqlite(db)) {
    await sql`CREATE TRIGGER image_tally_insert AFTER INSERT ON image BEGIN
      INSERT INTO image_tally (state, status, n) VALUES (NEW.state, NEW.status, 1); END`.execute(db);
    await sql`CREATE TRIGGER image_tally_delete AFTER DELETE ON image BEGIN
      INSERT INTO image_tally (state, status, n) VALUES (OLD.state, OLD.status, -1); END`.execute(db);
    await sql`CREATE TRIGGER image_tally_update AFTER UPDATE OF state, status ON image
      WHEN OLD.state IS NOT NEW.state OR OLD.status IS NOT NEW.status BEGIN
      INSERT INTO image_tally (state, status, n) VALUES (OLD.state, OLD.status, -1), (NEW.state, NEW.status, 1); END`.execute(db);
    return;
  }
  await sql`CREATE FUNCTION image_tally_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN INSERT INTO image_tally (state, status, n) VALUES (OLD.state, OLD.status, -1); END IF;
      IF TG_OP <> 'DELETE' THEN INSERT INTO image_tally (state, status, n) VALUES (NEW.state, NEW.status, 1); END IF;
      RETURN NULL;
    END $$`.execute(db);
  await sql`CREATE TRIGGER image_tally_insert_delete AFTER INSERT OR DELETE ON image
    FOR EACH ROW EXECUTE FUNCTION image_tally_row()`.execute(db);
  await sql`CREATE TRIGGER image_tally_update AFTER UPDATE OF state, status ON image
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION image_tally_row()`.execute(db);
}
