import { SegvolError } from './errors';
import { native } from './native';

export interface ProfileRecord {
  /** Backend primitive, e.g. convForward, lstmStepForward, permute. */
  op: string;
  backend: string;
  /** Operand shapes, e.g. "(8, 5, 64, 64) (64, 5, 7, 7) (8, 64, 64, 64)". */
  shapes: string;
  count: number;
  totalMs: number;
  meanMs: number;
  /** FLOPs of one call where defined (convolutions), else 0. */
  flops: number;
  /** Achieved rate over all calls, or null where FLOPs are not defined. */
  gflops: number | null;
}

let running = false;

/**
 * Runs fn with every backend primitive timed (host steady clock on the CPU, CUDA events on the GPU, read once at the end) and
 * returns fn's result with the records, slowest total first. One profile at a time.
 */
export async function profile<T>(fn: () => Promise<T> | T): Promise<{ result: T; records: ProfileRecord[] }> {
  if (running) throw new SegvolError('ERR_ARGUMENT', 'profile: a profile is already running; profiles do not nest');
  running = true;
  native.profileStart();
  let result: T;
  try {
    result = await fn();
  } finally {
    running = false;
  }
  const records = native.profileStop().map((r) => ({
    ...r,
    meanMs: r.totalMs / r.count,
    gflops: r.flops > 0 ? (r.flops * r.count) / (r.totalMs * 1e6) : null,
  }));
  return { result, records };
}

/** A fixed-width table of profile records (the CLI's `segvol profile` output). */
export function formatProfile(records: readonly ProfileRecord[], limit = 30): string {
  const total = records.reduce((s, r) => s + r.totalMs, 0);
  const rows = [['op', 'backend', 'count', 'total ms', 'mean ms', '%', 'GFLOP/s', 'shapes']];
  for (const r of records.slice(0, limit)) {
    rows.push([r.op, r.backend, String(r.count), r.totalMs.toFixed(2), r.meanMs.toFixed(3), ((100 * r.totalMs) / total).toFixed(1),
      r.gflops === null ? '' : r.gflops.toFixed(1), r.shapes]);
  }
  rows.push(['all', '', String(records.reduce((s, r) => s + r.count, 0)), total.toFixed(2), '', '100.0', '', '']);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => (c >= 2 && c <= 6 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
    .join('  ').trimEnd()).join('\n');
}
