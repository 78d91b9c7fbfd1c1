import { classOf, ENUM_FIELDS } from '../lib/inventory-class.js';

/**
 * The `schema` of a reply, built from the reply itself by ZStack's rules (JsonSchemaBuilder, as
 * RestServer.writeResponse applies it to the response map):
 * - top level: each value that is an inventory object is `key`; each inventory element of a list is `key[i]`;
 *   other values (strings, numbers, booleans, plain maps, null) add nothing;
 * - inside an inventory: a field holding an inventory is `path.field`, list elements `path.field[i]` (every
 *   index), map values `path.field.key`; an enum-typed field (ENUM_FIELDS) names its enum class; nulls, empty
 *   lists and other plain values add nothing;
 * - order: ZStack records children before their parent and then reverses the whole list, so a parent
 *   always comes before its children (the SDK converts `inventories[0]` before `inventories[0].mons[0]`).
 * An inventory object is one tagged with its ZStack class (`withClass`), see src/lib/inventory-class.ts.
 */
export function replySchema(reply: Record<string, unknown>): Record<string, string> {
  const recorded: Array<[string, string]> = [];

  const visit = (o: object, path: string[], javaClass: string): void => {
    const enums = ENUM_FIELDS[javaClass];
    for (const [field, value] of Object.entries(o)) {
      if (value === null || value === undefined) continue;
      const enumClass = enums?.[field];
      if (enumClass !== undefined && typeof value === 'string') {
        recorded.push([[...path, field].join('.'), enumClass]);
      } else if (Array.isArray(value)) {
        value.forEach((element, i) => visitIfInventory(element, [...path, `${field}[${i}]`]));
      } else if (classOf(value)) {
        visitIfInventory(value, [...path, field]);
      } else if (typeof value === 'object') {
        for (const [key, v] of Object.entries(value)) visitIfInventory(v, [...path, `${field}.${key}`]);
      }
    }
    recorded.push([path.join('.'), javaClass]);
  };
  const visitIfInventory = (value: unknown, path: string[]): void => {
    const javaClass = classOf(value);
    if (javaClass) visit(value as object, path, javaClass);
  };

  for (const [key, value] of Object.entries(reply)) {
    if (key === 'schema') continue;
    if (Array.isArray(value)) value.forEach((element, i) => visitIfInventory(element, [`${key}[${i}]`]));
    else visitIfInventory(value, [key]);
  }
  return Object.fromEntries(recorded.reverse());
}
