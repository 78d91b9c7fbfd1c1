import { INVENTORY_CLASS } from '../lib/inventory-class.js';
import { ownEntry, type QueryTarget } from './query.js';

/** QueryImage's fields and nested conditions over the image table (ZStack's ImageInventory). */
export const IMAGE_QUERY: QueryTarget<'image'> = {
  table: 'image',
  inventoryClass: INVENTORY_CLASS.image,
  fields: {
    uuid: { column: 'uuid', kind: 'string' },
    name: { column: 'name', kind: 'string' },
    description: { column: 'description', kind: 'string' },
    state: { column: 'state', kind: 'string' },
    status: { column: 'status', kind: 'string' },
    size: { column: 'size', kind: 'number' },
    actualSize: { column: 'actual_size', kind: 'number' },
    md5Sum: { column: 'md5_sum', kind: 'string' },
    url: { column: 'url', kind: 'string' },
    mediaType: { column: 'media_type', kind: 'string' },
    guestOsType: { column: 'guest_os_type', kind: 'string' },
    type: { column: 'type', kind: 'string' },
    platform: { column: 'platform', kind: 'string' },
    architecture: { column: 'architecture', kind: 'string' },
    format: { column: 'format', kind: 'string' },
    system: { column: 'system', kind: 'boolean' },
    virtio: { column: 'virtio', kind: 'boolean' },
    createDate: { column: 'create_date', kind: 'date' },
    lastOpDate: { column: 'last_op_date', kind: 'date' },
  },
  nested: {
    backupStorageRefs: (field, cmp, eb) => {
      const cols: Record<string, [string, 'string' | 'date']> = {
        imageUuid: ['image_uuid', 'string'],
        backupStorageUuid: ['backup_storage_uuid', 'string'],
        installPath: ['install_path', 'string'],
        status: ['status', 'string'],
        exportMd5Sum: ['export_md5_sum', 'string'],
        exportUrl: ['export_url', 'string'],
        createDate: ['create_date', 'date'],
        lastOpDate: ['last_op_date', 'date'],
      };
      const col = ownEntry(cols, field);
      if (!col) return undefined;
      return eb.exists(
        eb
          .selectFrom('image_backup_storage_ref as r')
          .select('r.image_uuid')
          .whereRef('r.image_uuid', '=', 'image.uuid')
          .where(() => cmp(`r.${col[0]}`, col[1])),
      );
    },
    // ZStack's alias: backupStorage.<field> = backupStorageRef.backupStorage.<field>
    backupStorage: (field, cmp, eb) => {
      const cols: Record<string, [string, 'string' | 'number']> = {
        uuid: ['uuid', 'string'],
        name: ['name', 'string'],
        type: ['type', 'string'],
        url: ['url', 'string'],
        state: ['state', 'string'],
        status: ['status', 'string'],
        totalCapacity: ['total_capacity', 'number'],
        availableCapacity: ['available_capacity', 'number'],
      };
      const col = ownEntry(cols, field);
      if (!col) return undefined;
      return eb.exists(
        eb
          .selectFrom('image_backup_storage_ref as r')
          .innerJoin('backup_storage as b', 'b.uuid', 'r.backup_storage_uuid')
          .select('r.image_uuid')
          .whereRef('r.image_uuid', '=', 'image.uuid')
          .where(() => cmp(`b.${col[0]}`, col[1])),
      );
    },
  },
};
