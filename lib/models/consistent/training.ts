// Training the consistent ConvLSTM as the paper (section 2.5): sub-volumes with their
// reference frame's objects, soft IoU with Hungarian matching, Adam at 1e-6, batch 1;
// for the first epochs the previous frame's true masks are the extra input, then the
// model's own (inferred) masks, so it learns to fix the errors it makes at inference.
import { SegvolError } from '../../core/errors';
import { Random } from '../../core/random';
import { Tensor } from '../../core/tensor';
import { checkConsistentMemory, masksOf, objectsOf, predictObjectMasks, previousFrameMasks, type ConsistentModel } from './inference';
import { matchedSoftIoU } from './matching';
import { Optimizer } from '../../training/optimizers';
import { trainStep } from '../../training/step';
import { positiveInteger } from '../../core/validate';

export interface ConsistentTrainingOptions {
  /** The image (C, D, H, W) or (D, H, W) and its object ids (D, H, W), 0 = background or membrane. */
  volume: Float32Array;
  segments: ArrayLike<number>;
  dims: readonly [number, number, number];
  /** Sub-volume (T, h, w), h and w multiples of 32. */
  window: readonly [number, number, number];
  epochs: number;
  /** Sub-volumes per epoch (default 1). */
  stepsPerEpoch?: number;
  /** The epoch from which the model's own masks replace the true ones as the extra input (default a quarter of the epochs: the paper's 10 of 40). */
  switchEpoch?: number;
  /** Objects per sub-volume, the reference frame's largest (default 8). */
  maxObjects?: number;
  /** Adam's rate (default the paper's 1e-6). */
  lr?: number;
  seed?: number;
  onProgress?: (p: { step: number; epoch: number; loss: number; objects: number; inferredMasks: boolean }) => void;
  signal?: AbortSignal;
  memoryBudget?: number;
}

export interface ConsistentTrainingResult {
  steps: number;
  losses: number[];
}

export async function trainConsistent(model: ConsistentModel, options: ConsistentTrainingOptions): Promise<ConsistentTrainingResult> {
  const [D, H, W] = options.dims;
  const [T, h, w] = options.window;
  const c = model.options.inChannels;
  if (options.volume.length !== c * D * H * W || options.segments.length !== D * H * W) {
    throw new SegvolError('ERR_SHAPE', `trainConsistent: expected ${c} channel(s) of (${D}, ${H}, ${W}) and as many object ids; received ${options.volume.length} and ${options.segments.length} values`);
  }
  if (T < 2 || T > D || h > H || w > W || h % 32 !== 0 || w % 32 !== 0) {
    throw new SegvolError('ERR_SHAPE', `trainConsistent: the window (${options.window.join(', ')}) must fit the volume (${D}, ${H}, ${W}), hold 2 or more frames, and have sides that are multiples of 32`);
  }
  positiveInteger(options.epochs, 'trainConsistent: epochs');
  const maxObjects = options.maxObjects ?? 8;
  checkConsistentMemory(model, [T, h, w], maxObjects, true, options.memoryBudget);
  const switchEpoch = options.switchEpoch ?? Math.floor(options.epochs / 4);
  const stepsPerEpoch = options.stepsPerEpoch ?? 1;
  const lr = options.lr ?? 1e-6;
  const optimizer = new Optimizer({ kind: 'adam', lr });
  const random = new Random(options.seed ?? 0);
  const losses: number[] = [];
  const plane = h * w;
  let step = 0;
  for (let epoch = 0; epoch < options.epochs; ++epoch) {
    for (let s = 0; s < stepsPerEpoch; ++s) {
      if (options.signal?.aborted) return { steps: step, losses };
      // A sub-volume whose first frame holds at least one object.
      let z0 = 0, y0 = 0, x0 = 0, ids: number[] = [];
      const truthIds = new Int32Array(T * plane);
      for (let attempt = 0; attempt < 50 && ids.length === 0; ++attempt) {
        z0 = random.int(D - T + 1); y0 = random.int(H - h + 1); x0 = random.int(W - w + 1);
        for (let t = 0; t < T; ++t) for (let y = 0; y < h; ++y) for (let x = 0; x < w; ++x) {
          truthIds[(t * h + y) * w + x] = options.segments[((z0 + t) * H + y0 + y) * W + x0 + x]!;
        }
        ids = objectsOf(truthIds.subarray(0, plane), maxObjects);
      }
      if (ids.length === 0) throw new SegvolError('ERR_ARGUMENT', 'trainConsistent: no sub-volume drawn in 50 tries has an object in its first frame; check the object ids');
      const frames = new Float32Array(c * T * plane);
      for (let ch = 0; ch < c; ++ch) for (let t = 0; t < T; ++t) for (let y = 0; y < h; ++y) {
        const src = ((ch * D + z0 + t) * H + y0 + y) * W + x0;
        frames.set(options.volume.subarray(src, src + w), ((ch * T + t) * h + y) * w);
      }
      // truth: (M, T, h, w) masks of the reference frame's objects through the sub-volume.
      const truth = new Float32Array(ids.length * T * plane);
      ids.forEach((id, o) => { for (let i = 0; i < T * plane; ++i) if (truthIds[i] === id) truth[o * T * plane + i] = 1; });
      const reference = masksOf(truthIds.subarray(0, plane), ids);
      const inferred = epoch >= switchEpoch;
      const estimates = inferred ? await predictObjectMasks(model, frames, reference, ids.length, [T, h, w], 1) : truth;
      const x = Tensor.fromArray(frames, [1, c, T, h, w], { device: model.device });
      const masks = Tensor.fromArray(previousFrameMasks(reference, ids.length, [T, h, w], estimates), [ids.length, 1, T, h, w], { device: model.device });
      try {
        const { loss } = await trainStep(model, optimizer, async () => {
          const y = await model.forward({ frames: x, masks }, { training: true });
          try {
            return matchedSoftIoU(y, { data: truth, count: ids.length }).loss;
          } finally {
            y.dispose();
          }
        }, { lr });
        losses.push(loss);
        ++step;
        options.onProgress?.({ step, epoch, loss, objects: ids.length, inferredMasks: inferred });
      } finally {
        x.dispose();
        masks.dispose();
      }
    }
  }
  return { steps: step, losses };
}
