// Where the patches of a propagation lie: sub-volumes of T frames along z, overlapping
// tiles in y and x with a margin of context around each tile's core, the cores splitting
// the frame; the tile from the memory budget; and the patches' crops and cores.
import { describe, SegvolError } from '../../core/errors';
import { defaultMemoryBudget, estimateConsistentMemory, type ConsistentModel } from './inference';

/** Where the patches of a propagation lie. */
export interface PropagationPlan {
  /** The volume (D, H, W). */
  dims: readonly [number, number, number];
  /** Frames per sub-volume (T) and the tile's size (h, w), multiples of 32. */
  patch: readonly [number, number, number];
  /** Pixels of context on each side of a tile's core, in y and x. */
  margin: readonly [number, number];
  /** Frames two consecutive sub-volumes share (1: the last labelled frame starts the next). */
  overlap: number;
  /** The first frame of each sub-volume. */
  slabs: number[];
  /** Tile origins and the [start, end) of their cores, along y and along x. A tile may reach past the frame (a frame smaller than the tile): zeros there. */
  tiles: readonly [Axis, Axis];
}

interface Axis {
  origins: number[];
  cores: Array<readonly [number, number]>;
}

/** The tiles along one axis of n pixels: tiles of p with at least `margin` of context on each side of every core where there is a neighbour. */
function axisTiles(n: number, p: number, margin: number): Axis {
  if (n <= p) return { origins: [0], cores: [[0, n]] };
  const stride = p - 2 * margin;
  const count = Math.ceil((n - p) / stride) + 1;
  const origins = Array.from({ length: count }, (_, i) => Math.min(i * stride, n - p));
  const bounds = [0];
  for (let i = 0; i + 1 < count; ++i) bounds.push(origins[i + 1]! + Math.floor((origins[i]! + p - origins[i + 1]!) / 2));
  bounds.push(n);
  return { origins, cores: origins.map((_, i) => [bounds[i]!, bounds[i + 1]!] as const) };
}

export interface PropagationGeometry {
  /** Frames per sub-volume (default 8, at most the volume's depth). */
  frames?: number;
  /** The tile's (h, w), multiples of 32 (default: the largest that fits the memory budget, see choosePatch). */
  tile?: readonly [number, number];
  /** Context on each side of a tile's core, pixels in y and x (default an eighth of the tile). */
  margin?: number | readonly [number, number];
  /** Frames two consecutive sub-volumes share (default 1). */
  overlap?: number;
}

/** Plans the patches of a volume (D, H, W) for a model; refuses tiles smaller than its field of view. */
export function planPropagation(model: ConsistentModel, dims: readonly [number, number, number], tile: readonly [number, number], options: PropagationGeometry = {}): PropagationPlan {
  const [D, H, W] = dims;
  if (!dims.every((n) => Number.isInteger(n) && n >= 1)) throw new SegvolError('ERR_SHAPE', `propagation: expected a volume (D, H, W) of positive sizes, received (${dims.join(', ')})`);
  const T = Math.min(options.frames ?? 8, D);
  if (!Number.isInteger(T) || T < 1) throw new SegvolError('ERR_ARGUMENT', `propagation: expected frames per sub-volume of 2 or more, received ${describe(options.frames)}`);
  const overlap = options.overlap ?? 1;
  if (!Number.isInteger(overlap) || overlap < 1 || (T > 1 && overlap >= T)) {
    throw new SegvolError('ERR_ARGUMENT', `propagation: expected overlap in 1..${Math.max(1, T - 1)} frames, received ${describe(overlap)}`);
  }
  const padded = [Math.ceil(H / 32) * 32, Math.ceil(W / 32) * 32];
  const frame = [H, W];
  tile.forEach((p, a) => {
    // A tile as large as the frame is the frame, padded to a multiple of 32.
    if (!Number.isInteger(p) || (p < frame[a]! && (p < 32 || p % 32 !== 0))) {
      throw new SegvolError('ERR_ARGUMENT', `propagation: expected the tile's ${a ? 'width' : 'height'} as a multiple of 32 (ResNet-50 halves it five times) ` +
        `or the frame's ${frame[a]}, received ${describe(p)}`);
    }
  });
  const size = tile.map((p, a) => (p >= frame[a]! ? padded[a]! : p)) as [number, number];
  // A tile smaller than the field of view sees less than each deepest feature was trained to see; the whole frame is allowed.
  const field = model.receptiveField();
  size.forEach((p, a) => {
    if (p < Math.min(field, padded[a]!)) {
      throw new SegvolError('ERR_ARGUMENT', `propagation: the tile's ${a ? 'width' : 'height'} ${p} is smaller than the network's field of view (${field} pixels: ` +
        `what each of ResNet-50's deepest features sees); use tiles of ${Math.ceil(Math.min(field, padded[a]!) / 32) * 32} or more`);
    }
  });
  const m = options.margin ?? [size[0] / 8, size[1] / 8].map(Math.floor);
  const margin = (typeof m === 'number' ? [m, m] : [...m]) as [number, number];
  margin.forEach((v, a) => {
    if (!Number.isInteger(v) || v < 0 || 2 * v >= size[a]!) {
      throw new SegvolError('ERR_ARGUMENT', `propagation: expected a margin in 0..${Math.ceil(size[a]! / 2) - 1} pixels for tiles of ${size[a]}, received ${describe(v)}`);
    }
  });
  const slabs: number[] = [];
  if (T >= 2) {
    for (let z = 0; ; z += T - overlap) {
      slabs.push(Math.min(z, D - T));
      if (z + T >= D) break;
    }
  }
  return {
    dims: [D, H, W], patch: [T, size[0], size[1]], margin, overlap, slabs,
    tiles: [axisTiles(H, size[0], margin[0]), axisTiles(W, size[1], margin[1])],
  };
}

/** The most objects any tile of the plan holds in a labelled frame (H x W). */
export function objectsPerTile(plan: PropagationPlan, frame: ArrayLike<number>): number {
  const [, H, W] = plan.dims;
  const [, ph, pw] = plan.patch;
  let most = 0;
  for (const y0 of plan.tiles[0].origins) {
    for (const x0 of plan.tiles[1].origins) {
      const ids = new Set<number>();
      for (let y = y0; y < Math.min(H, y0 + ph); ++y) for (let x = x0; x < Math.min(W, x0 + pw); ++x) ids.add(frame[y * W + x]!);
      ids.delete(0);
      most = Math.max(most, ids.size);
    }
  }
  return most;
}

/**
 * The default tile: the largest square (a multiple of 32, from the network's field of view up
 * to the whole frame) whose pass fits the memory budget with the objects of the densest tile of
 * the reference frame. A larger tile sees more context and agrees best with an untiled run; a
 * smaller one (down to the field of view) is faster when the objects are much smaller than the
 * frame, since every object of a tile is decoded over the whole tile.
 */
export function choosePatch(model: ConsistentModel, dims: readonly [number, number, number], reference: ArrayLike<number>,
  options: PropagationGeometry & { memoryBudget?: number; passes?: number } = {}): PropagationPlan {
  const [D, H, W] = dims;
  const budget = options.memoryBudget ?? defaultMemoryBudget();
  const largest = Math.max(Math.ceil(H / 32) * 32, Math.ceil(W / 32) * 32);
  const smallest = Math.min(largest, Math.ceil(model.receptiveField() / 32) * 32);
  const T = Math.min(options.frames ?? 8, D);
  let best: PropagationPlan | undefined;
  let needed = Infinity;
  for (let p = largest; p >= smallest; p -= 32) {
    const plan = planPropagation(model, dims, [p, p], options);
    const objects = objectsPerTile(plan, reference);
    const bytes = estimateConsistentMemory(model, [T, plan.patch[1], plan.patch[2]], Math.max(1, objects), { passes: options.passes }).inferenceBytes;
    needed = Math.min(needed, bytes);
    if (bytes <= budget) {
      best = plan;
      break;
    }
  }
  if (!best) {
    const one = estimateConsistentMemory(model, [T, smallest, smallest], 1, { passes: options.passes }).inferenceBytes;
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new SegvolError('ERR_MEMORY', one > budget
      ? `propagation: the memory budget (${gib(budget)}) is too small for one object: a ${T}x${smallest}x${smallest} patch (the network's field of view) ` +
        `with one object needs about ${gib(one)}; raise the budget (memoryBudget, SEGVOL_MEMORY_BUDGET) or use fewer frames per sub-volume`
      : `propagation: no tile fits the memory budget (${gib(budget)}) with the objects of the reference frame's densest tile; the smallest needs about ${gib(needed)}; ` +
        'raise the budget (memoryBudget, SEGVOL_MEMORY_BUDGET), use fewer frames per sub-volume, or propagate fewer objects (maxObjects)');
  }
  return best;
}

/** The part of one patch's result a plan keeps: its core, frames 1.. of the sub-volume. */
export function coreOf(plan: PropagationPlan, labels: Int32Array, ty: number, tx: number): { y: readonly [number, number]; x: readonly [number, number]; data: Int32Array } {
  const [T, h, w] = plan.patch;
  const [y0, y1] = plan.tiles[0].cores[ty]!, [x0, x1] = plan.tiles[1].cores[tx]!;
  const oy = plan.tiles[0].origins[ty]!, ox = plan.tiles[1].origins[tx]!;
  const ch = y1 - y0, cw = x1 - x0;
  const data = new Int32Array((T - 1) * ch * cw);
  for (let t = 0; t < T - 1; ++t) {
    for (let y = 0; y < ch; ++y) {
      const src = (t * h + y0 - oy + y) * w + x0 - ox;
      data.set(labels.subarray(src, src + cw), (t * ch + y) * cw);
    }
  }
  return { y: [y0, y1], x: [x0, x1], data };
}

/** The reference frame's crop for a tile (h, w), zeros beyond the frame. frame: (H, W). */
export function referenceCrop(plan: PropagationPlan, frame: ArrayLike<number>, ty: number, tx: number): Int32Array {
  const [, H, W] = plan.dims;
  const [, h, w] = plan.patch;
  const oy = plan.tiles[0].origins[ty]!, ox = plan.tiles[1].origins[tx]!;
  const out = new Int32Array(h * w);
  for (let y = 0; y < Math.min(h, H - oy); ++y) for (let x = 0; x < Math.min(w, W - ox); ++x) out[y * w + x] = frame[(oy + y) * W + ox + x]!;
  return out;
}
