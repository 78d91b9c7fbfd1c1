import type { TObject, TSchema } from '@sinclair/typebox';
import { ZStackError } from '../lib/errors.js';
import { RestError } from './rest-error.js';

/**
 * ZStack validates in two places, and so do we:
 * - the REST layer checks JSON types first and answers 400 plain text (TypeVerifier);
 * - the API layer checks mandatory fields, valid values and lengths and answers SYS.1007 (through the job
 *   for async APIs).
 */

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** A value as an error message shows it; never throws (String({"toString": "x"}) would). */
const shown = (v: unknown): string => {
  const text = v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
};

/** REST-layer type check of one decoded body/query object. Coerces query strings to numbers/booleans. */
export function checkTypes(schema: TObject, input: Record<string, unknown>, fromQuery: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  for (const [field, prop] of Object.entries(schema.properties)) {
    let value = out[field];
    if (value === undefined || value === null) {
      delete out[field];
      continue;
    }
    const type = prop.type as string | undefined;
    if (type === 'integer' || type === 'number') {
      if (fromQuery && typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) value = Number(value);
      // Beyond 2^53 a JSON number has lost its digits already; ZStack's int/long fields refuse it too.
      if (typeof value !== 'number' || !Number.isFinite(value) || (type === 'integer' && !Number.isSafeInteger(value))) {
        throw new RestError(400, `[${field}] field is excepted an int or long, but was [${shown(value)}].`);
      }
    } else if (type === 'boolean') {
      if (fromQuery && (value === 'true' || value === 'false')) value = value === 'true';
      if (typeof value !== 'boolean') {
        throw new RestError(
          400,
          `Invalid value for boolean field [${field}], [${shown(value)}] is not a valid boolean string[true, false].`,
        );
      }
    } else if (type === 'string') {
      if (typeof value === 'number' || typeof value === 'boolean') value = String(value); // Gson does the same
      if (typeof value !== 'string') {
        throw new RestError(400, `[${field}] field is excepted a string, but was a JSON ${typeName(value)}.`);
      }
    } else if (type === 'array') {
      if (fromQuery && typeof value === 'string') value = [value];
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
        throw new RestError(400, `[${field}] field is excepted a list of strings, but was [${shown(value)}].`);
      }
    } else if (type === 'object') {
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new RestError(400, `[${field}] field is excepted a map, but was a JSON ${typeName(value)}.`);
      }
    }
    out[field] = value;
  }
  return out;
}

/** C0 controls, DEL and C1 controls; `multiline` fields (declared so, e.g. a PEM key) may hold tab, LF and CR. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function refuseControlChars(field: string, msgClass: string, prop: TSchema, value: string): void {
  const m = (prop.multiline ? CONTROL_BUT_LINES : CONTROL).exec(value);
  if (!m) return;
  const code = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
  throw new ZStackError(
    'SYS.1007',
    `field[${field}] of message[${msgClass}] contains the control character U+${code} at position ${m.index}; remove it`,
  );
}

/** API-layer checks with ZStack's exact messages. Returns the params with enum values canonicalised. */
export function checkFields(schema: TObject, msgClass: string, params: Record<string, unknown>): Record<string, unknown> {
  const out = { ...params };
  const required = new Set(schema.required ?? []);
  for (const [field, prop] of Object.entries(schema.properties)) {
    const value = out[field];
    if (value === undefined) {
      if (required.has(field)) {
        throw new ZStackError('SYS.1007', `field[${field}] of message[${msgClass}] is mandatory, can not be null`);
      }
      if (prop.default !== undefined) out[field] = prop.default;
      continue;
    }
    if (typeof value === 'string') refuseControlChars(field, msgClass, prop, value);
    if (Array.isArray(value)) for (const v of value) if (typeof v === 'string') refuseControlChars(field, msgClass, prop, v);
    if (typeof value === 'string') {
      const valid = prop.validValues as string[] | undefined;
      if (valid) {
        const match = prop.ignoreCase ? valid.find((v) => v.toLowerCase() === value.toLowerCase()) : valid.find((v) => v === value);
        if (match === undefined) {
          throw new ZStackError(
            'SYS.1007',
            `valid value for field[${field}] of message[${msgClass}] are [${valid.join(', ')}], but ${value} found`,
          );
        }
        out[field] = match;
      }
      const regex = prop.validRegexValues as string | undefined;
      if (regex !== undefined && !new RegExp(regex, 'u').test(value)) {
        throw new ZStackError('SYS.1007', `valid regex value for field[${field}] of message[${msgClass}] are ${regex}, but ${value} found`);
      }
      if (prop.maxLength !== undefined && value.length > prop.maxLength) {
        throw new ZStackError(
          'SYS.1007',
          `field[${field}] of message[${msgClass}] exceeds max length of string. expected was <= ${prop.maxLength}, actual was ${value.length}`,
        );
      }
      if (prop.minLength !== undefined && value.length < prop.minLength) {
        throw new ZStackError(
          'SYS.1007',
          `field[${field}] of message[${msgClass}] less than the min length of string. expected was >= ${prop.minLength}, actual was ${value.length}`,
        );
      }
    }
    if (typeof value === 'number' && (prop.minimum !== undefined || prop.maximum !== undefined)) {
      if ((prop.minimum !== undefined && value < prop.minimum) || (prop.maximum !== undefined && value > prop.maximum)) {
        throw new ZStackError('SYS.1007', `field[${field}] must be in range of [${prop.minimum ?? ''}, ${prop.maximum ?? ''}]`);
      }
    }
    if (Array.isArray(value) && prop.minItems !== undefined && value.length < prop.minItems) {
      throw new ZStackError('SYS.1007', `field[${field}] must be a nonempty list`);
    }
  }
  return out;
}
