// Recursive training (Lee et al. 2015): a first network's boundary map becomes a
// second input of the next network, which starts from the first one's weights
// where the two share layers.
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { predictVolume } from '../../inference/predict_volume';
import type { ModelBase } from '../../nn/model';

export interface TransferReport {
  /** Parameters copied, by name. */
  transferred: string[];
  /** Parameters of the target that kept their initial values (no source of that name, or excluded). */
  fresh: string[];
  /** Names both have whose shapes differ: not copied. */
  mismatched: Array<{ name: string; from: number[]; to: number[] }>;
}

/**
 * Copies the parameters the target shares with the source (same name, same shape), in
 * place. `layers` limits the copy to parameters whose name names one of these layers
 * (a graph's node, "conv1a" for "nodes.conv1a.weight"); `rename` maps a target name to
 * the source's. Returns what was copied, what stays fresh and what did not fit.
 */
export function transferWeights(from: ModelBase, to: ModelBase, options: { layers?: readonly string[]; rename?: (name: string) => string } = {}): TransferReport {
  if (options.layers !== undefined && (!Array.isArray(options.layers) || options.layers.some((l) => typeof l !== 'string'))) {
    throw new SegvolError('ERR_ARGUMENT', `transferWeights: expected layers as a list of layer names, received ${describe(options.layers)}`);
  }
  const source = from.namedParameters();
  const report: TransferReport = { transferred: [], fresh: [], mismatched: [] };
  const chosen = (name: string) => !options.layers || options.layers.some((l) => name.split('.').includes(l));
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of to.namedParameters()) {
    const src = source.get(options.rename ? options.rename(name) : name);
    if (!chosen(name) || !src) {
      report.fresh.push(name);
      continue;
    }
    if (src.shape.join() !== t.shape.join()) {
      report.mismatched.push({ name, from: [...src.shape], to: [...t.shape] });
      report.fresh.push(name);
      continue;
    }
    values.set(name, { shape: [...t.shape], data: src.toArray() });
    report.transferred.push(name);
  }
  if (options.layers) {
    const unknown = options.layers.filter((l) => !report.transferred.some((n) => n.split('.').includes(l)));
    if (unknown.length) {
      throw new SegvolError('ERR_ARGUMENT', `transferWeights: nothing was copied for ${unknown.join(', ')}; the target's layers with a ` +
        `counterpart of the same shape: ${[...new Set(report.transferred.map((n) => n.split('.').slice(-2, -1)[0]))].join(', ') || 'none'}`);
    }
  }
  // Fill in the rest from the target itself: loadState replaces every parameter and buffer at once.
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of to.stateDict()) state.set(name, values.get(name) ?? { shape: [...t.shape], data: t.toArray() });
  to.loadStateDict(state, 'transferWeights');
  return report;
}

/** The layers of VD2D that recursive training gives VD2D3D (the paper: conv1a .. conv3b). */
export const vd2dSharedLayers = ['conv1a', 'conv1b', 'conv1c', 'conv2a', 'conv2b', 'conv3a', 'conv3b'] as const;

export interface BoundaryMapOptions {
  /** The output window of the stitched inference (default: the whole volume). */
  window?: readonly [number, number, number];
  overlap?: number;
  /** The class whose probability is the boundary (default 1, membranes in segvol's EM labels). */
  boundaryClass?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * A network's boundary map of a volume (D, H, W), rescaled to [-1, 1] as the recursive
 * stream takes it: 2 p(boundary) - 1, from stitched windows over the whole stack.
 */
export async function recursiveBoundaryMap(model: ModelBase, volume: Float32Array, dims: readonly [number, number, number],
  options: BoundaryMapOptions = {}): Promise<Float32Array> {
  const [d, h, w] = dims;
  if (volume.length !== d * h * w) {
    throw new SegvolError('ERR_SHAPE', `recursiveBoundaryMap: the volume has ${volume.length} voxels, not (${dims.join(', ')})`);
  }
  const k = options.boundaryClass ?? 1;
  if (!Number.isInteger(k) || k < 0 || k >= model.outChannels) {
    throw new SegvolError('ERR_ARGUMENT', `recursiveBoundaryMap: boundaryClass must be a class of the model (0..${model.outChannels - 1}), received ${describe(k)}`);
  }
  const x = Tensor.fromArray(volume, [1, 1, d, h, w]);
  try {
    const probs = await predictVolume(model, x, {
      window: options.window ?? [d, h, w], ...(options.overlap !== undefined ? { overlap: options.overlap } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const p = probs.toArray();
    probs.dispose();
    const n = d * h * w;
    return Float32Array.from({ length: n }, (_, i) => 2 * p[k * n + i]! - 1);
  } finally {
    x.dispose();
  }
}
