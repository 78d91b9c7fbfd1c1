import type { Db } from '../db/connect.js';

/** Counts for metrics, read at scrape time: one grouped query each. */
export class InventoryStats {
  constructor(private readonly db: Db) {}

  async imagesByStatus(): Promise<Array<{ status: string; count: number }>> {
    const rows = await this.db
      .selectFrom('image')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .groupBy('status')
      .execute();
    return rows.map((r) => ({ status: r.status, count: Number(r.n) }));
  }

  async storages(): Promise<
    Array<{ uuid: string; name: string; type: string; status: string; totalCapacity: number; availableCapacity: number }>
  > {
    const rows = await this.db
      .selectFrom('backup_storage')
      .select(['uuid', 'name', 'type', 'status', 'total_capacity', 'available_capacity'])
      .execute();
    return rows.map((r) => ({
      uuid: r.uuid,
      name: r.name,
      type: r.type,
      status: r.status,
      totalCapacity: Number(r.total_capacity),
      availableCapacity: Number(r.available_capacity),
    }));
  }
}
