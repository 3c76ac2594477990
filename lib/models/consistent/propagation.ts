// Propagating a labelled frame's objects through a volume in overlapping 3D patches
// (Gonda et al., section 3.1: "we process the input 3D volume patches in an overlapping
// manner, starting with a labeled frame"). Sub-volumes of T frames follow each other
// along z, each starting from the last labelled frame of the one before; within a
// sub-volume the frame is cut into overlapping tiles in y and x. Each patch (T frames of
// one tile) propagates the objects of its own crop of the reference frame, so memory is
// bounded by the patch and the objects in it, not by the frame. The objects keep the
// reference frame's ids, so the patches' results need no renumbering: every voxel takes
// the label of the one patch whose core holds it (the tiles' overlaps are split at their
// middle), which is the conflict rule. An object that moves further than the margin
// beyond the patches that saw it at the reference frame is cut there.
import { noGrad } from '../../autograd/tape';
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { defaultMemoryBudget, estimateConsistentMemory, masksOf, objectsOf, watershedFrame, type ConsistentModel } from './inference';
import { choosePatch, coreOf, planPropagation, referenceCrop, type PropagationGeometry, type PropagationPlan } from './propagation_plan';

export { choosePatch, coreOf, objectsPerTile, planPropagation, referenceCrop, type PropagationGeometry, type PropagationPlan } from './propagation_plan';
import { disposeSpatial } from './network';

export interface PatchOptions {
  /** Rows and columns of the patch inside the volume (default all); the rest is padding, where no object is. */
  valid?: readonly [number, number];
  /** Model passes (default 2: from the reference, then from its own masks). */
  passes?: number;
  /** A voxel joins its most likely object when that probability exceeds this (default 0.5). */
  threshold?: number;
  /** Objects per patch, the crop's largest (default all). */
  maxObjects?: number;
}

/**
 * Propagates the objects of one patch's reference frame through its frames. frames: (C, T, h, w)
 * with h and w multiples of 32; reference: (h, w) object ids of frame 0. Returns (T - 1, h, w):
 * the label of every voxel of frames 1.. (the most likely object above the threshold, ties to the
 * smaller id; else 0).
 * Memory: the encoder's features of the patch, the first pass's masks of every object
 * (M, T, h, w) when there is a second pass, and one or two objects' decoder at a time.
 */
export async function propagatePatch(model: ConsistentModel, frames: Float32Array, reference: ArrayLike<number>, patch: readonly [number, number, number],
  options: PatchOptions = {}): Promise<Int32Array> {
  const [T, h, w] = patch;
  const plane = h * w;
  const c = model.options.inChannels;
  if (frames.length !== c * T * plane || reference.length !== plane) {
    throw new SegvolError('ERR_SHAPE', `propagatePatch: expected ${c} channel(s) of (${T}, ${h}, ${w}) and a (${h}, ${w}) reference; received ${frames.length} and ${reference.length} values`);
  }
  const passes = options.passes ?? 2;
  if (!Number.isInteger(passes) || passes < 1) throw new SegvolError('ERR_ARGUMENT', `propagation: expected passes >= 1, received ${describe(options.passes)}`);
  const threshold = options.threshold ?? 0.5;
  const [rows, cols] = options.valid ?? [h, w];
  const ids = objectsOf(reference, options.maxObjects);
  const labels = new Int32Array((T - 1) * plane);
  if (ids.length === 0 || T < 2) return labels;
  const M = ids.length;
  const referenceMasks = masksOf(reference, ids);
  const best = new Float32Array((T - 1) * plane).fill(threshold);
  // One object's masks in and probabilities out, reused for every object: an array of
  // T x h x w per object made V8 collect garbage every few tens of milliseconds.
  const maskScratch = new Float32Array(T * plane), probsScratch = new Float32Array(T * plane);
  await noGrad(async () => {
    const x = Tensor.fromArray(frames, [1, c, T, h, w], { device: model.device });
    let features: Tensor[] = [];
    try {
      features = await model.encode(x, { training: false });
      let estimates: Float32Array | undefined;
      for (let pass = 0; pass < passes; ++pass) {
        const last = pass === passes - 1;
        const next = last ? undefined : new Float32Array(M * T * plane);
        const inputs = new Map<number, Tensor>();
        // Object o's previous-frame masks: frame 0 its reference mask, frame t the estimate of frame t-1 (the reference again in a first pass).
        const maskOf = (o: number) => {
          const m = maskScratch;
          const ref = referenceMasks.subarray(o * plane, (o + 1) * plane);
          for (let t = 0; t < T; ++t) m.set(t === 0 || !estimates ? ref : estimates.subarray((o * T + t - 1) * plane, (o * T + t) * plane), t * plane);
          const tensor = Tensor.fromArray(m, [T, 1, h, w], { device: model.device });
          inputs.set(o, tensor);
          return tensor;
        };
        const result = await model.decode(features, M, maskOf, {
          training: false,
          onObject: (o, mask) => {
            const p = mask.toArray(probsScratch);
            mask.dispose();
            inputs.get(o)?.dispose();
            inputs.delete(o);
            if (next) {
              next.set(p, o * T * plane);
              // Rows and columns past the volume (padding) hold no object: the next pass must not see masks there.
              if (rows < h || cols < w) {
                for (let t = 0; t < T; ++t) for (let y = 0; y < h; ++y) next.fill(0, ((o * T + t) * h + y) * w + (y < rows ? cols : 0), ((o * T + t) * h + y + 1) * w);
              }
            }
            if (!last) return;
            // The most likely object; among equally likely ones the smallest id, whatever the objects' order (tiles order them by their crops).
            const id = ids[o]!;
            for (let i = plane; i < T * plane; ++i) {
              const j = i - plane;
              if (p[i]! > best[j]! || (p[i] === best[j] && labels[j] !== 0 && id < labels[j]!)) {
                best[j] = p[i]!;
                labels[j] = id;
              }
            }
          },
        });
        for (const t of inputs.values()) t.dispose();
        disposeSpatial(result.spatial);
        estimates = next;
      }
    } finally {
      x.dispose();
      for (const f of features) f.dispose();
    }
  });
  return labels;
}

/** Reads a patch's frames (C, T, h, w) from z0, y0, x0, zeros beyond the volume. */
export type PatchReader = (z0: number, y0: number, x0: number, patch: readonly [number, number, number]) => Promise<Float32Array>;

/** Checks a labelled frame's ids: integers in 0 .. 2^31 - 1 (the network's masks are indexed by them). */
export function checkReferenceIds(frame: ArrayLike<number>, where: string): void {
  for (let i = 0; i < frame.length; ++i) {
    const v = frame[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 2147483647) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: object ids must be integers in 0..2147483647 (2^31 - 1); voxel ${i} holds ${v}. ` +
        'Renumber the labels first (relabelSequential: ids 1, 2, ... in order)');
    }
  }
}

export interface ConsistentSegmentOptions extends PropagationGeometry, PatchOptions {
  /**
   * The first frame's labels (H x W object ids, 0 = background): ground truth, as the paper
   * starts where it has it, or a segmentation of the first frame such as `segvol segment`'s
   * agglomeration of predicted affinities (the paper's start where no truth exists). Or
   * 'watershed': a watershed of the first frame's raw image, membranes dark; not the paper's
   * start, only a fallback without any segmentation.
   */
  firstFrame: ArrayLike<number> | 'watershed';
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Memory budget in bytes (default: SEGVOL_MEMORY_BUDGET or 80% of this machine's memory): sets the default tile. */
  memoryBudget?: number;
}

/** Reads patches from a volume (C, D, H, W) in memory, zeros beyond it. */
export function memoryPatchReader(volume: Float32Array, channels: number, dims: readonly [number, number, number]): PatchReader {
  const [D, H, W] = dims;
  return (z0, y0, x0, [T, h, w]) => {
    const out = new Float32Array(channels * T * h * w);
    const rows = Math.min(h, H - y0), cols = Math.min(w, W - x0);
    for (let ch = 0; ch < channels; ++ch) {
      for (let t = 0; t < T; ++t) {
        for (let y = 0; y < rows; ++y) {
          const src = ((ch * D + z0 + t) * H + y0 + y) * W + x0;
          out.set(volume.subarray(src, src + cols), ((ch * T + t) * h + y) * w);
        }
      }
    }
    return Promise.resolve(out);
  };
}

/**
 * Segments a volume (C, D, H, W) or (D, H, W) into objects propagated through z from a labelled
 * first frame, in overlapping 3D patches (see the top of this file). Returns (D, H, W) object
 * ids, those of the first frame. Memory: the volume, its labels, and one patch's work.
 */
export async function segmentConsistent(model: ConsistentModel, volume: Float32Array, dims: readonly [number, number, number],
  options: ConsistentSegmentOptions): Promise<Int32Array> {
  const [D, H, W] = dims;
  const c = model.options.inChannels;
  if (volume.length !== c * D * H * W) {
    throw new SegvolError('ERR_SHAPE', `segmentConsistent: expected ${c} channel(s) of (${D}, ${H}, ${W}) = ${c * D * H * W} values, received ${volume.length}`);
  }
  const plane = H * W;
  const first = options?.firstFrame;
  if (first === undefined) {
    throw new SegvolError('ERR_ARGUMENT', 'segmentConsistent: give firstFrame: the first frame\'s labels (ground truth, or a segmentation such as segvol segment\'s), ' +
      'or \'watershed\' for a watershed of the raw first frame');
  }
  const labels = new Int32Array(D * plane);
  if (first === 'watershed') labels.set(watershedFrame(volume.subarray(0, plane), H, W), 0);
  else {
    if (first.length !== plane) throw new SegvolError('ERR_SHAPE', `segmentConsistent: the first frame's labels have ${first.length} values, a frame ${H}x${W} = ${plane}`);
    checkReferenceIds(first, 'segmentConsistent: the first frame');
    for (let i = 0; i < plane; ++i) labels[i] = first[i]!;
  }
  if (objectsOf(labels.subarray(0, plane)).length === 0) {
    throw new SegvolError('ERR_ARGUMENT', 'segmentConsistent: the first frame has no objects (every label is 0); propagation starts from its objects: ' +
      'give labels with objects (ids > 0) in the first frame');
  }
  const plan = options.tile
    ? planPropagation(model, dims, options.tile, options)
    : choosePatch(model, dims, labels.subarray(0, plane), options);
  const read = memoryPatchReader(volume, c, dims);
  await propagate(model, plan, read, {
    frame: (z) => Promise.resolve(labels.subarray(z * plane, (z + 1) * plane)),
    write: (z0, ty, tx, result) => {
      const core = coreOf(plan, result, ty, tx);
      const cw = core.x[1] - core.x[0], ch = core.y[1] - core.y[0];
      for (let t = 0; t < plan.patch[0] - 1; ++t) {
        for (let y = 0; y < ch; ++y) {
          labels.set(core.data.subarray((t * ch + y) * cw, (t * ch + y + 1) * cw), ((z0 + 1 + t) * H + core.y[0] + y) * W + core.x[0]);
        }
      }
      return Promise.resolve();
    },
  }, options);
  return labels;
}

/** Where propagation reads labelled frames and writes patches' results. */
export interface LabelStore {
  /** The labels of frame z (H x W), once written. */
  frame(z: number): Promise<ArrayLike<number>>;
  /** A patch's result (T - 1, h, w) for the sub-volume starting at z0 (see coreOf). */
  write(z0: number, ty: number, tx: number, labels: Int32Array): Promise<void>;
}

/** Runs a plan's patches in order: sub-volumes along z one after another, tiles in y and x within each. */
export async function propagate(model: ConsistentModel, plan: PropagationPlan, read: PatchReader, store: LabelStore,
  options: PatchOptions & { onProgress?: (done: number, total: number) => void; signal?: AbortSignal; memoryBudget?: number }): Promise<void> {
  const [ny, nx] = [plan.tiles[0].origins.length, plan.tiles[1].origins.length];
  const total = plan.slabs.length * ny * nx;
  const budget = options.memoryBudget ?? defaultMemoryBudget();
  let done = 0;
  for (const z0 of plan.slabs) {
    const reference = await store.frame(z0);
    for (let ty = 0; ty < ny; ++ty) {
      for (let tx = 0; tx < nx; ++tx) {
        if (options.signal?.aborted) throw new SegvolError('ERR_ARGUMENT', 'propagation: aborted');
        const crop = referenceCrop(plan, reference, ty, tx);
        const objects = Math.min(objectsOf(crop).length, options.maxObjects ?? Infinity);
        const need = estimateConsistentMemory(model, plan.patch, Math.max(1, objects), { passes: options.passes }).inferenceBytes;
        if (need > budget) {
          const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
          throw new SegvolError('ERR_MEMORY', `propagation: the patch at z ${z0}, y ${plan.tiles[0].origins[ty]}, x ${plan.tiles[1].origins[tx]} ` +
            `(${plan.patch.join('x')}) holds ${objects} objects and needs about ${gib(need)}, over the budget of ${gib(budget)}; ` +
            'use smaller tiles or fewer frames, or raise the budget (memoryBudget, SEGVOL_MEMORY_BUDGET)');
        }
        const frames = await read(z0, plan.tiles[0].origins[ty]!, plan.tiles[1].origins[tx]!, plan.patch);
        const [, H, W] = plan.dims;
        const valid = [Math.min(plan.patch[1], H - plan.tiles[0].origins[ty]!), Math.min(plan.patch[2], W - plan.tiles[1].origins[tx]!)] as const;
        const result = await propagatePatch(model, frames, crop, plan.patch, { ...options, valid });
        await store.write(z0, ty, tx, result);
        options.onProgress?.(++done, total);
      }
    }
  }
}
