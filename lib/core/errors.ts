/** Stable error codes: native and TypeScript checks use the same ones. */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_ARGUMENT'
  | 'ERR_DEVICE'
  | 'ERR_DISPOSED'
  | 'ERR_NON_FINITE'
  | 'ERR_MEMORY'
  | 'ERR_NATIVE'
  | 'ERR_NOT_BUILT'
  | 'ERR_FORMAT'
  | 'ERR_UNAVAILABLE'
  | 'ERR_PEER_LOST'
  | 'ERR_ACCESS';

/** Thrown by segvol's TypeScript checks; native errors carry the same `code` field. */
export class SegvolError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(`segvol: ${message}`);
    this.name = 'SegvolError';
    this.code = code;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string '${value}'`;
  if (typeof value === 'number') return `the number ${value}`;
  if (Array.isArray(value)) return `[${value.map((v) => (typeof v === 'number' ? String(v) : typeof v)).join(', ')}]`;
  return `a value of type ${typeof value}`;
}
