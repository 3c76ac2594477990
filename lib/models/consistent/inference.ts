// Running the consistent ConvLSTM over a volume (Gonda et al., section 3.1): sub-volumes
// of T frames along z, overlapping, each starting from a labelled frame: the given
// labels of the first frame (or a watershed of it), then the last labelled frame of the
// previous sub-volume. Objects propagate through z. Also the memory a step needs.
import * as os from 'node:os';
import { noGrad } from '../../autograd/tape';
import { SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { metrics } from '../../evaluation/metrics';
import type { ModelBase, RunOptions } from '../../nn/model';
import { disposeSpatial, type SpatialStates } from './network';
import { ops } from '../../ops';
import { parseBudget } from '../../training/memory';

/**
 * What propagation needs of a model (presets.consistentConvLstm offers it): the encoder's
 * features of a sub-volume, computed once per patch, and the decoder over objects in order.
 */
export type ConsistentModel = ModelBase & {
  readonly options: { readonly hidden: readonly number[]; readonly variant: string; readonly inChannels: number };
  /** frames (1, C, T, H, W) -> features (see ConsistentConvLstmNet.encode). */
  encode(frames: Tensor, options?: RunOptions): Promise<Tensor[]>;
  /** The decoder over objects in order (see ConsistentConvLstmNet.decode). */
  decode(features: readonly Tensor[], objects: number, maskOf: (o: number) => Tensor, options: RunOptions & {
    spatial?: SpatialStates; onObject: (o: number, mask: Tensor) => void | Promise<void>;
  }): Promise<{ spatial: SpatialStates }>;
  /** In-plane pixels one of the deepest features sees: the smallest tile propagation accepts. */
  receptiveField(): number;
};

export interface ConsistentMemory {
  /** Bytes of tensors a training step (forward, backward, Adam) or an inference pass holds at its peak, predicted. */
  trainingBytes: number;
  inferenceBytes: number;
  /** The parts: weights with Adam's state, the encoder's activations, the decoder's per object. */
  parameterBytes: number;
  encoderBytes: number;
  decoderBytesPerObject: number;
  /** The part of inferenceBytes held outside tensors (masks between passes, the patch's frames and labels). */
  inferenceHostBytes: number;
  /** What each more object adds to inference (its masks kept between passes). */
  inferenceBytesPerObject: number;
}

/** ResNet-50's activations kept for backward per H x W frame, in floats: every op's output, counted from the architecture. */
function encoderFloatsPerFrame(h: number, w: number): number {
  let hh = Math.ceil(h / 2), ww = Math.ceil(w / 2);
  let floats = 3 * 64 * hh * ww;  // conv1, bn1, relu
  hh = Math.ceil(hh / 2); ww = Math.ceil(ww / 2);
  floats += 64 * hh * ww;  // maxpool
  for (const [blocks, planes, stride] of [[3, 64, 1], [4, 128, 2], [6, 256, 2], [3, 512, 2]] as const) {
    for (let b = 0; b < blocks; ++b) {
      const inPlane = hh * ww;
      if (b === 0 && stride === 2) { hh = Math.ceil(hh / 2); ww = Math.ceil(ww / 2); }
      const plane = hh * ww;
      // conv1, bn1, relu at the input's resolution; conv2, bn2, relu, conv3, bn3, add, relu (+ downsample conv, bn) at the output's
      floats += 3 * planes * inPlane + 3 * planes * plane + 4 * planes * 4 * plane + (b === 0 ? 2 * planes * 4 * plane : 0);
    }
  }
  return floats;
}

/**
 * The memory of a step of presets.consistentConvLstm on a sub-volume of T frames of H x W
 * with M objects, from its architecture: the weights (with gradients and Adam's two moments
 * when training), ResNet-50's kept activations, and per object and level the CConvLSTM's
 * kept gate values (about 16 planes of H_k per direction and frame) and inputs. The tests
 * compare it with measured peaks.
 */
export function estimateConsistentMemory(model: ConsistentModel, window: readonly [number, number, number], objects: number,
  options: { passes?: number } = {}): ConsistentMemory {
  const [T, H, W] = window;
  const params = model.paramCount();
  const hidden = model.options.hidden;
  const directions = model.options.variant === 'STL' || model.options.variant === 'STC' ? 2 : 1;
  const encoderFloats = T * encoderFloatsPerFrame(H, W);
  let decoder = 0, projected = 0;
  for (let level = 0; level < 5; ++level) {
    const f = 2 ** (5 - level);
    const plane = Math.ceil(H / f) * Math.ceil(W / f);
    const h = hidden[level]!;
    const input = (level > 0 ? hidden[level - 1]! : 0) + h + 1;
    // Per frame: the input and its 4H gate half; per direction 16 H-planes of gates, cells and states; the joined output.
    decoder += T * plane * (2 * input + 4 * h + directions * 16 * h + 4 * h);
    projected += T * plane * h;
  }
  decoder += T * H * W * 4;  // the head: up-sampled features of 16 channels or fewer, the mask
  const floats = 4;
  const passes = options.passes ?? 2;
  // Inference (propagatePatch) holds, besides tensors, per object its reference mask and,
  // when a second pass follows, its first pass's masks; and the patch's frames and labels.
  const host = floats * (objects * H * W * (1 + (passes > 1 ? T : 0)) + T * H * W * (model.options.inChannels + 3));
  // Calibrated on measured CPU peaks (test/consistent.test.ts): not every kept value lives at
  // the peak, since backward frees each node's state as it goes.
  return {
    trainingBytes: floats * (4 * params + encoderFloats * 0.7 + objects * decoder * 0.85),
    // Inference keeps nothing for backward. Its peak is the larger of two phases: encoding (one
    // frame's activations at a time) and decoding (about one object's gate values and states);
    // the projected features live through both. Calibrated on measured CPU peaks, a few % high.
    inferenceBytes: floats * (params + Math.max(1.05 * encoderFloatsPerFrame(H, W), decoder) + projected) + host,
    inferenceHostBytes: host,
    parameterBytes: floats * params * 4,
    encoderBytes: floats * encoderFloats,
    decoderBytesPerObject: floats * decoder,
    inferenceBytesPerObject: floats * H * W * (1 + (passes > 1 ? T : 0)),
  };
}

/** The budget when none is given: SEGVOL_MEMORY_BUDGET, else 80% of this machine's memory. */
export function defaultMemoryBudget(): number {
  const env = process.env.SEGVOL_MEMORY_BUDGET;
  return env ? parseBudget(env, 'SEGVOL_MEMORY_BUDGET') : 0.8 * os.totalmem();
}

/** Refuses, before anything is allocated, a window and object count whose step would not fit. */
export function checkConsistentMemory(model: ConsistentModel, window: readonly [number, number, number], objects: number, training: boolean, budget = defaultMemoryBudget()): ConsistentMemory {
  const m = estimateConsistentMemory(model, window, objects);
  const need = training ? m.trainingBytes : m.inferenceBytes;
  if (need > budget) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    // The most objects that fit at this window, or a smaller window for one object.
    const perObject = training ? 0.85 * m.decoderBytesPerObject : m.inferenceBytesPerObject;
    const fixed = need - objects * perObject;
    const fitting = Math.max(0, Math.floor((budget - fixed) / perObject));
    throw new SegvolError('ERR_MEMORY', `consistentConvLstm: a ${training ? 'training step' : 'pass'} on ${window.join('x')} frames with ${objects} objects ` +
      `needs about ${gib(need)}, over the budget of ${gib(budget)}; ` +
      (fitting > 0 ? `up to ${fitting} objects fit at this window, ` : '') +
      'or use smaller frames or fewer frames per sub-volume (docs/consistent.md has a table); set SEGVOL_MEMORY_BUDGET to change the budget');
  }
  return m;
}

/** The ids of a labelled frame's objects, largest first (0 is background), at most `limit`. */
export function objectsOf(frame: ArrayLike<number>, limit = Infinity): number[] {
  const sizes = new Map<number, number>();
  for (let i = 0; i < frame.length; ++i) {
    const id = frame[i]!;
    if (id !== 0) sizes.set(id, (sizes.get(id) ?? 0) + 1);
  }
  return [...sizes].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, limit).map(([id]) => id);
}

/**
 * The model's masks input (M, 1, T, H, W) from a reference frame's masks and estimates of
 * every frame's masks: frame 0 takes the reference mask, frame t the estimate of frame t-1.
 * estimates: (M, T, H, W) values in [0, 1], or undefined to repeat the reference (a first pass).
 */
export function previousFrameMasks(reference: Float32Array, objects: number, window: readonly [number, number, number], estimates?: Float32Array): Float32Array {
  const [T, H, W] = window;
  const plane = H * W;
  const out = new Float32Array(objects * T * plane);
  for (let o = 0; o < objects; ++o) {
    for (let t = 0; t < T; ++t) {
      const dst = (o * T + t) * plane;
      if (t === 0 || !estimates) out.set(reference.subarray(o * plane, (o + 1) * plane), dst);
      else out.set(estimates.subarray((o * T + t - 1) * plane, (o * T + t) * plane), dst);
    }
  }
  return out;
}

/** Binary masks (M, H, W) of the listed ids in one frame. */
export function masksOf(frame: ArrayLike<number>, ids: readonly number[]): Float32Array {
  const plane = frame.length;
  const out = new Float32Array(ids.length * plane);
  ids.forEach((id, o) => {
    for (let i = 0; i < plane; ++i) if (frame[i] === id) out[o * plane + i] = 1;
  });
  return out;
}

/**
 * The model's object masks (M, T, H, W) for one sub-volume: a first pass from the reference
 * masks (M, H, W), then refinement passes from its own estimates. The encoder runs once.
 */
export async function predictObjectMasks(model: ConsistentModel, frames: Float32Array, reference: Float32Array, objects: number,
  window: readonly [number, number, number], passes = 2): Promise<Float32Array> {
  const [T, H, W] = window;
  const c = model.options.inChannels;
  const size = T * H * W;
  return noGrad(async () => {
    const x = Tensor.fromArray(frames, [1, c, T, H, W], { device: model.device });
    let features: Tensor[] = [];
    let estimates: Float32Array | undefined;
    try {
      features = await model.encode(x, { training: false });
      for (let p = 0; p < passes; ++p) {
        const inputs = Tensor.fromArray(previousFrameMasks(reference, objects, window, estimates), [objects * T, 1, H, W], { device: model.device });
        const next = new Float32Array(objects * size);
        const owned: Tensor[] = [];
        try {
          const maskOf = (o: number) => {
            const m = ops.narrow(inputs, 0, o * T, T);
            owned.push(m);
            return m;
          };
          const result = await model.decode(features, objects, maskOf, { training: false, onObject: (o, mask) => {
            mask.toArray(next.subarray(o * size, (o + 1) * size));
            mask.dispose();
          } });
          disposeSpatial(result.spatial);
        } finally {
          for (const t of [...owned, inputs]) t.dispose();
        }
        estimates = next;
      }
    } finally {
      x.dispose();
      for (const f of features) f.dispose();
    }
    return estimates!;
  });
}

/** A watershed of one EM frame (membranes dark) as the first frame's objects. */
export function watershedFrame(image: Float32Array, h: number, w: number): Int32Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of image) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const boundary = Float32Array.from(image, (v) => (hi > lo ? (hi - v) / (hi - lo) : 0));
  return metrics.watershed(boundary, [1, h, w], { low: 0.2, high: 0.9, sizeThreshold: 50 }).segments;
}
