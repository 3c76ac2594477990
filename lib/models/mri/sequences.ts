// Inference in slice sequences of the training length. Tseng et al. train the ConvLSTM on
// sequences of 3 consecutive slices and stack the 2D results into a volume (Figure 1 (h));
// a ConvLSTM run over all 155 slices at once sees sequences far longer than any it was
// trained on. So a volume is predicted as overlapping sequences of L slices (L = the
// training window's depth), each slice's probabilities averaged over the sequences that
// hold it; length 'whole' runs the volume as one sequence.
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { preprocessVolume } from '../../data/preprocess';
import { normalizationOf, type ModelBase } from '../../nn/model';
import { ops } from '../../ops';

export interface SequenceInferenceOptions {
  /** Slices per sequence (default: the depth of the model's training window, info.window, else 3), or 'whole'. */
  length?: number | 'whole';
  /** Slices between the starts of consecutive sequences (default 1: every slice is in up to L sequences). */
  stride?: number;
  /** Sequences per forward pass (default 4). */
  batch?: number;
  /** Apply the model's recorded pre-processing to the whole volume first (default true). */
  preprocess?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** The first slice of each sequence: every stride, and the last sequence ending on the last slice. */
export function sequenceStarts(depth: number, length: number, stride: number): number[] {
  const starts: number[] = [];
  for (let s = 0; s + length < depth; s += stride) starts.push(s);
  starts.push(depth - length);
  return starts;
}

/** The sequence length a model predicts with by default: its training window's depth, else the paper's 3. */
export function trainingSequenceLength(model: ModelBase): number {
  return model.info.window?.[0] ?? 3;
}

/**
 * Class probabilities (1, K, D, H, W) of a volume x (1, C, D, H, W) from sequences of
 * `length` consecutive whole slices, `stride` apart; a slice's probabilities are the plain
 * mean over the sequences that hold it. With length >= D (or 'whole') this is one forward
 * pass over the volume, as model.predict.
 */
export async function predictSequences(model: ModelBase, x: Tensor, options: SequenceInferenceOptions = {}): Promise<Tensor> {
  if (!(x instanceof Tensor) || x.rank !== 5 || x.shape[0] !== 1) {
    throw new SegvolError('ERR_SHAPE', `predictSequences: expected a volume (1, C, D, H, W), received ${x instanceof Tensor ? `(${x.shape.join(', ')})` : describe(x)}`);
  }
  const [, , D, H, W] = x.shape as [number, number, number, number, number];
  const requested = options.length ?? trainingSequenceLength(model);
  if (requested !== 'whole' && !(Number.isInteger(requested) && requested >= 1)) {
    throw new SegvolError('ERR_ARGUMENT', `predictSequences: expected length as an integer >= 1 or 'whole', received ${describe(requested)}`);
  }
  const stride = options.stride ?? 1;
  const batch = options.batch ?? 4;
  for (const [name, v] of [['stride', stride], ['batch', batch]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new SegvolError('ERR_ARGUMENT', `predictSequences: expected ${name} as an integer >= 1, received ${describe(v)}`);
  }
  const length = requested === 'whole' ? D : Math.min(requested, D);
  // Normalised over the whole volume, as training normalised whole cases, never per sequence.
  const name = Object.keys(model.inputs)[0]!;
  const mode = options.preprocess === false ? 'none' : normalizationOf(model.info, name);
  const volume = mode === 'none' ? x : Tensor.fromArray(preprocessVolume(x.toArray(), x.shape, mode), x.shape, { device: x.device });
  const starts = sequenceStarts(D, length, stride);
  const k = model.outChannels;
  const plane = H * W;
  const sum = new Float32Array(k * D * plane);
  const count = new Uint16Array(D);
  try {
    for (let b = 0; b < starts.length; b += batch) {
      const group = starts.slice(b, b + batch);
      const pieces = group.map((s) => ops.narrow(volume, 2, s, length));
      const input = pieces.length === 1 ? pieces[0]! : ops.concat(pieces, 0);
      let probs: Tensor;
      try {
        probs = await model.predict(input, { preprocess: false });
      } finally {
        if (input !== pieces[0]) input.dispose();
        for (const p of pieces) p.dispose();
      }
      const p = probs.toArray();  // (n, K, L, H, W)
      probs.dispose();
      group.forEach((s, n) => {
        for (let ch = 0; ch < k; ++ch) {
          const from = (n * k + ch) * length * plane;
          const to = (ch * D + s) * plane;
          for (let i = 0; i < length * plane; ++i) sum[to + i]! += p[from + i]!;
        }
        for (let z = s; z < s + length; ++z) count[z]! += 1;
      });
      options.onProgress?.(Math.min(b + batch, starts.length), starts.length);
    }
  } finally {
    if (volume !== x) volume.dispose();
  }
  for (let ch = 0; ch < k; ++ch)
    for (let z = 0; z < D; ++z) {
      const at = (ch * D + z) * plane;
      for (let i = 0; i < plane; ++i) sum[at + i]! /= count[z]!;
    }
  return Tensor.fromArray(sum, [1, k, D, H, W], { device: x.device });
}
