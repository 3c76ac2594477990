// Training the consistent ConvLSTM as the paper (section 2.5, section 3): Adam at 1e-6,
// batch 1, 40 epochs; for the first quarter of them the previous frame's true masks are
// the extra input, then the model's own inferred masks, so it learns to fix the errors it
// makes at inference. The training volume is split 80/20 into training and validation
// sub-volumes; an epoch is one pass over every training sub-volume, each trained on all
// the objects of its reference frame (in groups when they do not fit the memory budget at
// once, the gradients summed over the groups before the one update); after each epoch the
// validation sub-volumes are segmented from their labelled first frames and scored by the
// adapted Rand error (SNEMI3D's), and the best model is kept.
import { SegvolError } from '../../core/errors';
import { Random } from '../../core/random';
import { Tensor } from '../../core/tensor';
import { metrics } from '../../evaluation/metrics';
import type { StateArray } from '../../nn/model';
import { ops } from '../../ops';
import { Optimizer, type OptimizerConfig } from '../../training/optimizers';
import { trainStepAccumulated } from '../../training/step';
import { positiveInteger } from '../../core/validate';
import { defaultMemoryBudget, estimateConsistentMemory, masksOf, objectsOf, predictObjectMasks, previousFrameMasks, type ConsistentModel } from './inference';
import { matchedSoftIoU } from './matching';
import { detachSpatial, disposeSpatial, type SpatialStates } from './network';
import { checkReferenceIds, propagatePatch } from './propagation';

/** How the training volume's sub-volumes are split into training and validation (the paper: 80/20). */
export type ConsistentSplit = 'subvolumes' | 'z';

export interface ConsistentTrainingOptions {
  /** The image (C, D, H, W) or (D, H, W) and its object ids (D, H, W), 0 = background or membrane. */
  volume: Float32Array;
  segments: ArrayLike<number>;
  dims: readonly [number, number, number];
  /** Sub-volume (T, h, w), h and w multiples of 32. */
  window: readonly [number, number, number];
  /** Passes over the training sub-volumes (the paper: 40). */
  epochs: number;
  /** The epoch from which the model's own masks replace the true ones as the extra input (default a quarter of the epochs: the paper's 10 of 40). */
  switchEpoch?: number;
  /** Sub-volumes on a grid of this stride (default the window: side by side, no overlap). */
  stride?: readonly [number, number, number];
  /**
   * The validation share (default 0.2, the paper's 80/20; 0: none). split 'subvolumes' (default)
   * holds out that share of the sub-volumes, drawn at random with the seed; 'z' holds out the
   * last frames of the volume (the paper says only "split 80% for training and 20% for validation").
   */
  validationFraction?: number;
  split?: ConsistentSplit;
  /** Objects per sub-volume, the reference frame's largest (default all). */
  maxObjects?: number;
  /** Objects per group whose gradients are summed (default: as many as the memory budget allows). */
  objectsPerGroup?: number;
  /** Adam (default lr 1e-6, the paper's). */
  optimizer?: OptimizerConfig;
  /** @deprecated the optimizer's lr: Adam's rate. */
  lr?: number;
  /** Model passes when segmenting the validation sub-volumes (default 2). */
  passes?: number;
  seed?: number;
  /** After each update. */
  onProgress?: (p: { step: number; epoch: number; loss: number; objects: number; groups: number; inferredMasks: boolean }) => void;
  /** After each epoch, with its validation score when there is validation data; best says whether it is the best so far. */
  onEpoch?: (e: ConsistentEpoch) => void;
  /** Whether to stop (checked before every update). */
  signal?: AbortSignal;
  memoryBudget?: number;
  /** Where to go on from (a resumed run): the epoch to start at, the optimizer with its state, the best so far. */
  start?: { epoch: number; optimizer?: Optimizer; best?: { epoch: number; score: number } };
}

export interface ConsistentEpoch {
  epoch: number;
  steps: number;
  /** The mean training loss of the epoch. */
  loss: number;
  /** The mean adapted Rand error (SNEMI3D) of the validation sub-volumes, if any. */
  validation?: number;
  best: boolean;
}

export interface ConsistentTrainingResult {
  steps: number;
  losses: number[];
  epochs: ConsistentEpoch[];
  /** The epoch of the lowest validation error and its weights (a copy); the model itself holds the last epoch's. */
  best?: { epoch: number; score: number; state: Map<string, StateArray> };
  optimizer: Optimizer;
  /** Stopped on the signal. */
  aborted: boolean;
  /** Sub-volumes used for training and for validation. */
  subvolumes: { training: number; validation: number };
}

type Origin = readonly [number, number, number];

/** The sub-volumes of a grid over the volume (the last along each axis moved back inside it). */
function grid(dims: readonly [number, number, number], window: readonly [number, number, number], stride: readonly [number, number, number]): Origin[] {
  const axis = (n: number, w: number, s: number) => {
    const out: number[] = [];
    for (let o = 0; ; o += s) {
      out.push(Math.min(o, n - w));
      if (o + w >= n) break;
    }
    return [...new Set(out)];
  };
  const [zs, ys, xs] = [0, 1, 2].map((a) => axis(dims[a]!, window[a]!, stride[a]!));
  return zs!.flatMap((z) => ys!.flatMap((y) => xs!.map((x) => [z, y, x] as const)));
}

/** The largest group of objects whose training step fits the budget; refuses a budget too small for one. */
function objectsPerGroup(model: ConsistentModel, window: readonly [number, number, number], budget: number): number {
  const one = estimateConsistentMemory(model, window, 1).trainingBytes;
  if (one > budget) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new SegvolError('ERR_MEMORY', `trainConsistent: the memory budget (${gib(budget)}) is too small for one object: a training step on ` +
      `${window.join('x')} frames with one object needs about ${gib(one)}; use a smaller window or raise the budget (memoryBudget, SEGVOL_MEMORY_BUDGET)`);
  }
  const perObject = estimateConsistentMemory(model, window, 2).trainingBytes - one;
  return Math.max(1, Math.floor((budget - one) / Math.max(1, perObject)) + 1);
}

export async function trainConsistent(model: ConsistentModel, options: ConsistentTrainingOptions): Promise<ConsistentTrainingResult> {
  const [D, H, W] = options.dims;
  const window = options.window;
  const [T, h, w] = window;
  const c = model.options.inChannels;
  if (options.volume.length !== c * D * H * W || options.segments.length !== D * H * W) {
    throw new SegvolError('ERR_SHAPE', `trainConsistent: expected ${c} channel(s) of (${D}, ${H}, ${W}) and as many object ids; received ${options.volume.length} and ${options.segments.length} values`);
  }
  if (T < 2 || T > D || h > H || w > W || h % 32 !== 0 || w % 32 !== 0) {
    throw new SegvolError('ERR_SHAPE', `trainConsistent: the window (${window.join(', ')}) must fit the volume (${D}, ${H}, ${W}), hold 2 or more frames, and have sides that are multiples of 32`);
  }
  positiveInteger(options.epochs, 'trainConsistent: epochs');
  checkReferenceIds(options.segments, 'trainConsistent: segments');
  const fraction = options.validationFraction ?? 0.2;
  if (!(fraction >= 0 && fraction < 1)) throw new SegvolError('ERR_ARGUMENT', `trainConsistent: expected validationFraction in [0, 1), received ${fraction}`);
  const split = options.split ?? 'subvolumes';
  if (split !== 'subvolumes' && split !== 'z') throw new SegvolError('ERR_ARGUMENT', `trainConsistent: expected split 'subvolumes' or 'z', received ${String(split)}`);
  const stride = options.stride ?? window;
  const budget = options.memoryBudget ?? defaultMemoryBudget();
  const group = options.objectsPerGroup ?? objectsPerGroup(model, window, budget);
  positiveInteger(group, 'trainConsistent: objectsPerGroup');
  if (options.objectsPerGroup !== undefined) {
    // A group given by the caller must fit too.
    const need = estimateConsistentMemory(model, window, group).trainingBytes;
    if (need > budget) {
      throw new SegvolError('ERR_MEMORY', `trainConsistent: a group of ${group} objects on ${window.join('x')} frames needs about ${(need / 2 ** 30).toFixed(2)} GiB, ` +
        `over the budget of ${(budget / 2 ** 30).toFixed(2)} GiB; leave objectsPerGroup out to have it chosen`);
    }
  }
  const plane = h * w;
  /** A sub-volume's frames (C, T, h, w) and object ids (T, h, w). */
  const cut = ([z0, y0, x0]: Origin) => {
    const frames = new Float32Array(c * T * plane);
    const ids = new Int32Array(T * plane);
    for (let t = 0; t < T; ++t) {
      for (let y = 0; y < h; ++y) {
        const row = ((z0 + t) * H + y0 + y) * W + x0;
        for (let x = 0; x < w; ++x) ids[(t * h + y) * w + x] = options.segments[row + x]!;
        for (let ch = 0; ch < c; ++ch) frames.set(options.volume.subarray(ch * D * H * W + row, ch * D * H * W + row + w), ((ch * T + t) * h + y) * w);
      }
    }
    return { frames, ids };
  };
  const firstHasObjects = ([z0, y0, x0]: Origin) => {
    for (let y = 0; y < h; ++y) for (let x = 0; x < w; ++x) if (options.segments[(z0 * H + y0 + y) * W + x0 + x] !== 0) return true;
    return false;
  };
  const random = new Random(options.seed ?? 0);
  let training: Origin[], validation: Origin[];
  if (split === 'z') {
    const boundary = Math.round(D * (1 - fraction));
    if (fraction > 0 && (boundary < T || D - boundary < T)) {
      throw new SegvolError('ERR_SHAPE', `trainConsistent: split 'z' at frame ${boundary} leaves ${boundary} and ${D - boundary} frames, and a sub-volume needs ${T}; ` +
        'use split \'subvolumes\' or fewer frames per window');
    }
    training = grid([fraction > 0 ? boundary : D, H, W], window, stride).filter(firstHasObjects);
    validation = fraction > 0 ? grid([D - boundary, H, W], window, stride).map(([z, y, x]) => [z + boundary, y, x] as const).filter(firstHasObjects) : [];
  } else {
    const all = shuffle(random, grid(options.dims, window, stride).filter(firstHasObjects));
    const held = fraction > 0 && all.length > 1 ? Math.max(1, Math.round(all.length * fraction)) : 0;
    validation = all.slice(all.length - held);
    training = all.slice(0, all.length - held);
  }
  if (training.length === 0) {
    throw new SegvolError('ERR_ARGUMENT', 'trainConsistent: no training sub-volume has an object in its first frame; check the object ids (0 is background)');
  }
  const switchEpoch = options.switchEpoch ?? Math.floor(options.epochs / 4);
  const optimizer = options.start?.optimizer ?? new Optimizer(options.optimizer ?? { kind: 'adam', lr: options.lr ?? 1e-6 });
  const losses: number[] = [];
  const epochs: ConsistentEpoch[] = [];
  let best: ConsistentTrainingResult['best'] = options.start?.best ? { ...options.start.best, state: new Map() } : undefined;
  let steps = 0;
  const parameterNames = new Set(model.namedParameters().keys());
  for (let epoch = options.start?.epoch ?? 0; epoch < options.epochs; ++epoch) {
    const order = shuffle(new Random((options.seed ?? 0) * 7919 + epoch), [...training]);
    const inferred = epoch >= switchEpoch;
    let sum = 0, count = 0;
    for (const origin of order) {
      if (options.signal?.aborted) return { steps, losses, epochs, ...(best?.state.size ? { best } : {}), optimizer, aborted: true, subvolumes: { training: training.length, validation: validation.length } };
      const { frames, ids: truthIds } = cut(origin);
      const ids = objectsOf(truthIds.subarray(0, plane), options.maxObjects);
      const M = ids.length;
      // truth: (M, T, h, w) masks of the reference frame's objects through the sub-volume.
      const truth = new Float32Array(M * T * plane);
      ids.forEach((id, o) => { for (let i = 0; i < T * plane; ++i) if (truthIds[i] === id) truth[o * T * plane + i] = 1; });
      const reference = masksOf(truthIds.subarray(0, plane), ids);
      const estimates = inferred ? await predictObjectMasks(model, frames, reference, M, window, 1) : truth;
      const previous = previousFrameMasks(reference, M, window, estimates);
      const groups = Math.ceil(M / group);
      let carried: SpatialStates | undefined;
      let buffers: Map<string, StateArray> | undefined;
      const parts = Array.from({ length: groups }, (_, g) => async () => {
        // Batch normalization's running statistics move once per sub-volume, not once per group:
        // the first group's update is kept, and the later groups' undone (between parts: no tape holds the weights then).
        if (g === 1) buffers = bufferState(model, parameterNames);
        else if (g > 1) restoreBuffers(model, buffers!);
        const first = g * group, k = Math.min(group, M - first);
        const owned: Tensor[] = [];
        const keep = <X extends Tensor>(t: X) => (owned.push(t), t);
        try {
          const x = keep(Tensor.fromArray(frames, [1, c, T, h, w], { device: model.device }));
          const features = await model.encode(x, { training: true });
          owned.push(...features);
          const inputs = keep(Tensor.fromArray(previous.subarray(first * T * plane, (first + k) * T * plane), [k * T, 1, h, w], { device: model.device }));
          const outputs: Tensor[] = [];
          const result = await model.decode(features, k, (o) => keep(ops.narrow(inputs, 0, o * T, T)), {
            training: true, ...(carried ? { spatial: carried } : {}), onObject: (_, mask) => void outputs.push(keep(mask)),
          });
          // The next group continues from this one's last object: its values, with no gradient path back.
          disposeSpatial(carried);
          carried = detachSpatial(result.spatial);
          disposeSpatial(result.spatial);
          // (k * T, 1, h, w) -> (k, 1, T, h, w)
          const masks = keep(ops.permute(keep(keep(ops.concat(outputs, 0)).reshape([k, T, 1, h, w])), [0, 2, 1, 3, 4]));
          const loss = matchedSoftIoU(masks, { data: truth.subarray(first * T * plane, (first + k) * T * plane), count: k }).loss;
          // The groups' losses, weighted by their objects, sum to the mean over all objects.
          if (k === M) return loss;
          keep(loss);
          return ops.scale(loss, k / M);
        } finally {
          for (const t of owned) t.dispose();
        }
      });
      let loss: number;
      try {
        ({ loss } = await trainStepAccumulated(model, optimizer, parts));
      } finally {
        disposeSpatial(carried);
        if (buffers) restoreBuffers(model, buffers);
      }
      losses.push(loss);
      sum += loss;
      ++count;
      ++steps;
      options.onProgress?.({ step: steps, epoch, loss, objects: M, groups, inferredMasks: inferred });
    }
    let score: number | undefined;
    if (validation.length) {
      let total = 0;
      for (const origin of validation) {
        const { frames, ids } = cut(origin);
        const labels = await propagatePatch(model, frames, ids.subarray(0, plane), window, { passes: options.passes ?? 2 });
        total += metrics.rand(labels, ids.subarray(plane)).adaptedRandError;
      }
      score = total / validation.length;
    }
    const improved = score !== undefined && (best === undefined || score < best.score);
    if (improved) best = { epoch, score: score!, state: copyState(model) };
    const record: ConsistentEpoch = { epoch, steps: count, loss: count ? sum / count : NaN, ...(score !== undefined ? { validation: score } : {}), best: improved };
    epochs.push(record);
    options.onEpoch?.(record);
  }
  return { steps, losses, epochs, ...(best?.state.size ? { best } : {}), optimizer, aborted: false, subvolumes: { training: training.length, validation: validation.length } };
}

/** Fisher-Yates, in place. */
function shuffle<X>(random: Random, items: X[]): X[] {
  for (let i = items.length - 1; i > 0; --i) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function copyState(model: ConsistentModel): Map<string, StateArray> {
  const out = new Map<string, StateArray>();
  for (const [name, t] of model.stateDict()) out.set(name, { shape: [...t.shape], data: t.toArray() });
  return out;
}

/** The buffers (running statistics): the state that is not a parameter. */
function bufferState(model: ConsistentModel, parameters: ReadonlySet<string>): Map<string, StateArray> {
  const out = new Map<string, StateArray>();
  for (const [name, t] of model.stateDict()) if (!parameters.has(name)) out.set(name, { shape: [...t.shape], data: t.toArray() });
  return out;
}

function restoreBuffers(model: ConsistentModel, buffers: ReadonlyMap<string, StateArray>): void {
  const state = copyState(model);
  for (const [name, value] of buffers) state.set(name, value);
  model.loadStateDict(state, 'trainConsistent');
}
