// One way to check options and configs everywhere (API options, layer and preset
// options, train.json): unknown keys, integers, enums and shapes, each refused with
// a coded error that says where, what was expected and what came.
import { describe, SegvolError } from './errors';

/** Options objects name their fields 'option' (the API); configs name theirs 'key' (train.json). */
export type FieldNoun = 'option' | 'key';

/**
 * Refuses a field of `object` that is not in `known`: "<where>: unknown option 'x'; known: a, b".
 * With noun 'key' (configs) the message says key; `path` prefixes the key ('phases[0].lr').
 */
export function rejectUnknown(object: object, known: Iterable<string>, where: string, noun: FieldNoun = 'option', path = ''): void {
  const allowed = [...known];
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: unknown ${noun} '${path}${key}'; known: ${allowed.join(', ')}`);
    }
  }
}

/** An options object (a plain object, not null or an array), or the error saying what came instead. */
export function checkObject(value: unknown, where: string, what = 'options'): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected ${what}, received ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** An integer >= 1 (or >= 0 with zeroAllowed): "<where>: expected an integer >= 1, received ...". */
export function positiveInteger(value: unknown, where: string, zeroAllowed = false): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected an integer ${zeroAllowed ? '>= 0' : '>= 1'}, received ${describe(value)}`);
  }
  return value;
}

/** A named field that must be a positive integer: "<where>: expected <name> as a positive integer, received ..." (layer options). */
export function positiveIntegerField(value: unknown, where: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected ${name} as a positive integer, received ${String(value)}`);
  }
  return value;
}

/** A finite number > 0. */
export function positiveNumber(value: unknown, where: string): number {
  if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected a positive number, received ${describe(value)}`);
  }
  return value;
}

/** One of the allowed values: "<where>: expected 'a', 'b' or 'c', received ...". */
export function oneOf<T extends string | number | boolean>(value: unknown, allowed: readonly T[], where: string): T {
  if (!allowed.includes(value as T)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected ${listOf(allowed)}, received ${describe(value)}`);
  }
  return value as T;
}

/** 'a', 'b' or 'c' (strings quoted), for messages. */
export function listOf(values: readonly unknown[]): string {
  const shown = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
  return shown.length <= 1 ? shown.join('') : `${shown.slice(0, -1).join(', ')} or ${shown[shown.length - 1]}`;
}

/** A spatial size (d, h, w) of positive integers. */
export function size3(value: unknown, where: string): [number, number, number] {
  if (!Array.isArray(value) || value.length !== 3 || value.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected three positive integers (d, h, w), received ${describe(value)}`);
  }
  return [value[0], value[1], value[2]] as [number, number, number];
}

/**
 * Checks a nested config against a schema of known keys per path ('' for the top,
 * 'data.flip' for a nested object), recursing into objects the schema names; lists
 * of objects are checked per entry under '<path>[]' ('phases[]').
 */
export function checkSchema(value: unknown, schema: Readonly<Record<string, readonly string[]>>, where: string, path = ''): void {
  const known = schema[path];
  if (!known || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    const full = path ? `${path}.${key}` : key;
    if (!known.includes(key)) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: unknown key '${full}'; known keys${path ? ` of ${path}` : ''}: ${known.join(', ')}`);
    }
    if (Array.isArray(child) && schema[`${full}[]`]) {
      child.forEach((entry, i) => checkEntry(entry, schema, where, `${full}[]`, `${full}[${i}]`));
    } else {
      checkSchema(child, schema, where, full);
    }
  }
}

function checkEntry(value: unknown, schema: Readonly<Record<string, readonly string[]>>, where: string, schemaPath: string, shown: string): void {
  const known = schema[schemaPath]!;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (!known.includes(key)) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: unknown key '${shown}.${key}'; known: ${known.join(', ')}`);
    }
    const nested = `${schemaPath}.${key}`;
    if (schema[nested]) checkEntry(child, schema, where, nested, `${shown}.${key}`);
  }
}

/** "8,32,32" as [8, 32, 32], positive integers only: "<message>, got '...'". */
export function parseIntegerList(text: string, message: string): number[] {
  const parts = text.split(',').filter((v) => v.trim() !== '').map((v) => Number(v.trim()));
  if (parts.length === 0 || parts.some((v) => !Number.isInteger(v) || v < 1)) throw new SegvolError('ERR_ARGUMENT', `${message}, got '${text}'`);
  return parts;
}
