// Non-finite prediction inputs (NaN, infinities): found and reported before any window is
// computed, so a prediction is never silently wrong. The policy is 'error' (the default: a coded
// error saying how many voxels, which slices, and the first positions) or 'zero' (they become 0
// after pre-processing, whose statistics skip them).
import { describe, SegvolError } from './errors';

export type NonFinitePolicy = 'error' | 'zero';
export const nonFinitePolicies: readonly NonFinitePolicy[] = ['error', 'zero'];

/** The policy given, checked ('error' when undefined). */
export function nonFinitePolicy(value: unknown, where: string): NonFinitePolicy {
  if (value === undefined) return 'error';
  if (!nonFinitePolicies.includes(value as NonFinitePolicy)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected nonFinite 'error' or 'zero', received ${describe(value)}`);
  }
  return value as NonFinitePolicy;
}

/** Whether an array holds a NaN or an infinity (the fast check before any positions are collected). */
export function hasNonFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; ++i) if (!Number.isFinite(values[i]!)) return true;
  return false;
}

/** Counts non-finite values slice by slice, keeping the first positions and the slices that hold any. */
export class NonFiniteScan {
  count = 0;
  nan = 0;
  readonly first: number[][] = [];
  readonly slices = new Set<number>();

  /** axes: the names of a position's coordinates, e.g. ['c', 'z', 'y', 'x']. */
  constructor(readonly axes: readonly string[], readonly keep = 5) {}

  /**
   * Scans one (H, W) slice (or any row-major plane of width w) whose position starts with
   * `prefix` (e.g. [c, z]); `slice` is the slice number reported (z), or undefined.
   */
  plane(values: ArrayLike<number>, prefix: readonly number[], w: number, slice?: number): void {
    for (let i = 0; i < values.length; ++i) {
      const v = values[i]!;
      if (!Number.isFinite(v)) this.point(v, [...prefix, Math.floor(i / w), i % w], slice);
    }
  }

  /** Counts one non-finite value at a position. */
  point(v: number, position: readonly number[], slice?: number): void {
    ++this.count;
    if (Number.isNaN(v)) ++this.nan;
    if (slice !== undefined) this.slices.add(slice);
    if (this.first.length < this.keep) this.first.push([...position]);
  }

  /** Scans a whole (..., H, W) array: prefix coordinates from the leading axes, the slice from `sliceAxis` (an index into the shape). */
  volume(values: ArrayLike<number> & { subarray?(a: number, b: number): ArrayLike<number> }, shape: readonly number[], sliceAxis?: number): void {
    if (!hasNonFinite(values)) return;
    const [h, w] = shape.slice(-2) as [number, number];
    const lead = shape.slice(0, -2);
    const planes = lead.reduce((a, b) => a * b, 1);
    const sub = (a: number, b: number) => (values.subarray ? values.subarray(a, b) : Array.prototype.slice.call(values, a, b) as number[]);
    for (let p = 0; p < planes; ++p) {
      const prefix: number[] = [];
      let rest = p;
      for (let a = lead.length - 1; a >= 0; --a) {
        prefix.unshift(rest % lead[a]!);
        rest = Math.floor(rest / lead[a]!);
      }
      this.plane(sub(p * h * w, (p + 1) * h * w), prefix, w, sliceAxis === undefined ? undefined : prefix[sliceAxis]);
    }
  }

  /** "100 non-finite voxels (100 NaN, 0 infinite) in slices z 3, 7-9; the first at (c, z, y, x) (0, 3, 0, 0), ..." */
  describe(): string {
    const ranges: string[] = [];
    const sorted = [...this.slices].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; ++i) {
      let j = i;
      while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) ++j;
      ranges.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
      i = j;
    }
    const shown = ranges.slice(0, 12).join(', ') + (ranges.length > 12 ? `, ... (${sorted.length} slices)` : '');
    const where = sorted.length ? ` in slice${sorted.length === 1 ? '' : 's'} z ${shown}` : '';
    const at = this.first.map((p) => `(${p.join(', ')})`).join(', ');
    return `${this.count} non-finite voxel${this.count === 1 ? '' : 's'} (${this.nan} NaN, ${this.count - this.nan} infinite)${where}; ` +
      `the first at (${this.axes.join(', ')}) ${at}${this.count > this.first.length ? ', ...' : ''}`;
  }

  /** The coded error: what was found, and the two ways out. */
  error(where: string, what = 'the input'): SegvolError {
    return new SegvolError('ERR_NON_FINITE', `${where}: ${what} holds ${this.describe()}; nothing was predicted. Replace them (segvol inspect ` +
      "counts NaN), or predict with nonFinite: 'zero' (segvol predict --non-finite zero), which sets them to 0 after pre-processing " +
      '(whose statistics skip them)');
  }
}
