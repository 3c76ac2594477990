// Running the consistent ConvLSTM over a volume (Gonda et al., section 3.1): sub-volumes
// of T frames along z, overlapping, each starting from a labelled frame: the given
// labels of the first frame (or a watershed of it), then the last labelled frame of the
// previous sub-volume. Objects propagate through z. Also the memory a step needs.
import * as os from 'node:os';
import { noGrad } from '../../autograd/tape';
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { metrics } from '../../evaluation/metrics';
import type { ModelBase } from '../../nn/model';

/** What a consistent ConvLSTM model must offer (presets.consistentConvLstm). */
export type ConsistentModel = ModelBase & { readonly options: { readonly hidden: readonly number[]; readonly variant: string; readonly inChannels: number } };

export interface ConsistentMemory {
  /** Bytes of tensors a training step (forward, backward, Adam) or an inference pass holds at its peak, predicted. */
  trainingBytes: number;
  inferenceBytes: number;
  /** The parts: weights with Adam's state, the encoder's activations, the decoder's per object. */
  parameterBytes: number;
  encoderBytes: number;
  decoderBytesPerObject: number;
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
export function estimateConsistentMemory(model: ConsistentModel, window: readonly [number, number, number], objects: number): ConsistentMemory {
  const [T, H, W] = window;
  const params = model.paramCount();
  const hidden = model.options.hidden;
  const directions = model.options.variant === 'STL' || model.options.variant === 'STC' ? 2 : 1;
  const encoderFloats = T * encoderFloatsPerFrame(H, W);
  let decoder = 0;
  for (let level = 0; level < 5; ++level) {
    const f = 2 ** (5 - level);
    const plane = Math.ceil(H / f) * Math.ceil(W / f);
    const h = hidden[level]!;
    const input = (level > 0 ? hidden[level - 1]! : 0) + h + 1;
    // Per frame: the input and its 4H gate half; per direction 16 H-planes of gates, cells and states; the joined output.
    decoder += T * plane * (2 * input + 4 * h + directions * 16 * h + 4 * h);
  }
  decoder += T * H * W * 4;  // the head: up-sampled features of 16 channels or fewer, the mask
  const floats = 4;
  // Calibrated on measured CPU peaks (test/consistent.test.ts): not every kept value lives at
  // the peak, since backward frees each node's state as it goes.
  return {
    trainingBytes: floats * (4 * params + encoderFloats * 0.7 + objects * decoder * 0.85),
    // Inference keeps nothing for backward: the weights, one frame batch's largest encoder
    // activations, and the decoder's features of every object (the next object's states).
    inferenceBytes: floats * (params + T * 3 * 64 * Math.ceil(H / 2) * Math.ceil(W / 2) + objects * decoder * 0.3),
    parameterBytes: floats * params * 4,
    encoderBytes: floats * encoderFloats,
    decoderBytesPerObject: floats * decoder,
  };
}

/** The budget when none is given: SEGVOL_MEMORY_BUDGET, else 80% of this machine's memory. */
export function defaultMemoryBudget(): number {
  const env = process.env.SEGVOL_MEMORY_BUDGET;
  if (env) {
    const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(env.trim());
    if (m) return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
  }
  return 0.8 * os.totalmem();
}

/** Refuses, before anything is allocated, a window and object count whose step would not fit. */
export function checkConsistentMemory(model: ConsistentModel, window: readonly [number, number, number], objects: number, training: boolean, budget = defaultMemoryBudget()): ConsistentMemory {
  const m = estimateConsistentMemory(model, window, objects);
  const need = training ? m.trainingBytes : m.inferenceBytes;
  if (need > budget) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    // The most objects that fit at this window, or a smaller window for one object.
    const perObject = (training ? 0.85 : 2 / window[0]) * m.decoderBytesPerObject;
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

/** The model's object masks for one sub-volume: a first pass from the reference, then refinement passes from its own estimates. */
export async function predictObjectMasks(model: ConsistentModel, frames: Float32Array, reference: Float32Array, objects: number,
  window: readonly [number, number, number], passes = 2): Promise<Float32Array> {
  const [T, H, W] = window;
  const c = model.options.inChannels;
  return noGrad(async () => {
    const x = Tensor.fromArray(frames, [1, c, T, H, W], { device: model.device });
    let estimates: Float32Array | undefined;
    try {
      for (let p = 0; p < passes; ++p) {
        const masks = Tensor.fromArray(previousFrameMasks(reference, objects, window, estimates), [objects, 1, T, H, W], { device: model.device });
        const y = await model.forward({ frames: x, masks }, { training: false });
        estimates = y.toArray();
        masks.dispose();
        y.dispose();
      }
    } finally {
      x.dispose();
    }
    return estimates!;
  });
}

export interface ConsistentSegmentOptions {
  /** Frames per sub-volume (default 8). */
  frames?: number;
  /** Frames two consecutive sub-volumes share (default 1: the last labelled frame starts the next). */
  overlap?: number;
  /**
   * The first frame's labels (H x W object ids, 0 = background), as the paper starts from a
   * labelled frame; or 'watershed' (default): Zlateski & Seung's watershed of the first frame's
   * image, membranes dark (EM), as the paper does where no labels exist.
   */
  firstFrame?: ArrayLike<number> | 'watershed';
  /** Model passes per sub-volume (default 2: from the reference, then from its own masks). */
  passes?: number;
  /** A voxel joins its most likely object when that probability exceeds this (default 0.5). */
  threshold?: number;
  /** Objects per sub-volume, largest first (default: all of the reference frame's). */
  maxObjects?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Memory budget in bytes (default: SEGVOL_MEMORY_BUDGET or 80% of this machine's memory). */
  memoryBudget?: number;
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

/**
 * Segments a volume (C, D, H, W) or (D, H, W) into objects propagated through z. Frames
 * whose sides are not multiples of 32 are padded with zeros and the labels cropped back.
 * Returns (D, H, W) object ids: those of the first frame's objects.
 */
export async function segmentConsistent(model: ConsistentModel, volume: Float32Array, dims: readonly [number, number, number],
  options: ConsistentSegmentOptions = {}): Promise<Int32Array> {
  const [D, H0, W0] = dims;
  const c = model.options.inChannels;
  if (volume.length !== c * D * H0 * W0) {
    throw new SegvolError('ERR_SHAPE', `segmentConsistent: expected ${c} channel(s) of (${D}, ${H0}, ${W0}) = ${c * D * H0 * W0} values, received ${volume.length}`);
  }
  const H = Math.ceil(H0 / 32) * 32, W = Math.ceil(W0 / 32) * 32;
  if (H !== H0 || W !== W0) {
    const pad = (src: ArrayLike<number>, slices: number) => {
      const out = new Float32Array(slices * H * W);
      for (let s = 0; s < slices; ++s) for (let y = 0; y < H0; ++y) for (let x = 0; x < W0; ++x) out[(s * H + y) * W + x] = src[(s * H0 + y) * W0 + x]!;
      return out;
    };
    const first = options.firstFrame;
    const padded = await segmentConsistent(model, pad(volume, c * D), [D, H, W], { ...options, ...(first && first !== 'watershed' ? { firstFrame: pad(first, 1) } : {}) });
    const out = new Int32Array(D * H0 * W0);
    for (let s = 0; s < D; ++s) for (let y = 0; y < H0; ++y) for (let x = 0; x < W0; ++x) out[(s * H0 + y) * W0 + x] = padded[(s * H + y) * W + x]!;
    return out;
  }
  const T = Math.min(options.frames ?? 8, D);
  const overlap = options.overlap ?? 1;
  if (!Number.isInteger(overlap) || overlap < 1 || overlap >= Math.max(2, T)) {
    throw new SegvolError('ERR_ARGUMENT', `segmentConsistent: expected overlap in 1..${T - 1} frames, received ${describe(overlap)}`);
  }
  const plane = H * W;
  const labels = new Int32Array(D * plane);
  const first = options.firstFrame ?? 'watershed';
  if (first === 'watershed') labels.set(watershedFrame(volume.subarray(0, plane), H, W), 0);
  else {
    if (first.length !== plane) throw new SegvolError('ERR_SHAPE', `segmentConsistent: the first frame's labels have ${first.length} values, a frame ${plane}`);
    for (let i = 0; i < plane; ++i) labels[i] = first[i]!;
  }
  const starts: number[] = [];
  for (let z = 0; ; z += T - overlap) {
    starts.push(Math.min(z, Math.max(0, D - T)));
    if (z + T >= D) break;
  }
  const threshold = options.threshold ?? 0.5;
  let done = 0;
  for (const z0 of starts) {
    if (options.signal?.aborted) throw new SegvolError('ERR_ARGUMENT', 'segmentConsistent: aborted');
    const reference = labels.subarray(z0 * plane, (z0 + 1) * plane);
    const ids = objectsOf(reference, options.maxObjects);
    if (ids.length > 0) {
      checkConsistentMemory(model, [T, H, W], ids.length, false, options.memoryBudget);
      const frames = new Float32Array(c * T * plane);
      for (let ch = 0; ch < c; ++ch) frames.set(volume.subarray((ch * D + z0) * plane, (ch * D + z0 + T) * plane), ch * T * plane);
      const probs = await predictObjectMasks(model, frames, masksOf(reference, ids), ids.length, [T, H, W], options.passes ?? 2);
      // Frames after the reference: each voxel to its most likely object, if likely enough.
      for (let t = 1; t < T; ++t) {
        for (let i = 0; i < plane; ++i) {
          let best = -1, p = threshold;
          for (let o = 0; o < ids.length; ++o) {
            const v = probs[(o * T + t) * plane + i]!;
            if (v > p) [p, best] = [v, o];
          }
          labels[(z0 + t) * plane + i] = best < 0 ? 0 : ids[best]!;
        }
      }
    }
    options.onProgress?.(++done, starts.length);
  }
  return labels;
}
