// The U-Net's sizes along one spatial axis. Every layer acts on each axis on its own
// (kernels, pooling and up-sampling factors are per axis), so a window fits when each
// of its three sizes fits, and the sizes that fit repeat with the product of that
// axis's downsampling factors.
import { SegvolError } from '../../core/errors';

/** The U-Net's layout along one axis: kernel sizes per level (both sides), convolutions per level, factors between levels. */
export interface AxisLayout {
  /** kernels[l]: the kernel size of level l's convolutions. */
  kernels: readonly number[];
  convsPerLevel: number;
  /** factors[l]: between level l and l + 1. */
  factors: readonly number[];
  padding: 'valid' | 'same';
}

/** The size after each layer, in the order the layers are registered; or why the size does not fit. */
export type AxisTrace = { sizes: number[]; output: number } | { failure: string };

/**
 * Follows one input size through the network: encoder convolutions level by level (each
 * level but the last ends with a max-pooling that must divide it), then, from the deepest
 * level up, the up-sampling (times the factor, the skip cropped to it) and the decoder's
 * convolutions, then the 1x1x1 head. Sizes are recorded per registered layer: encoder
 * convolutions, then per decoder level its up-sampling and convolutions, then the head.
 */
export function traceAxis(input: number, layout: AxisLayout): AxisTrace {
  const levels = layout.kernels.length;
  const shrink = (l: number) => (layout.padding === 'valid' ? layout.kernels[l]! - 1 : 0);
  const sizes: number[] = [];
  let s = input;
  for (let l = 0; l < levels; ++l) {
    for (let j = 0; j < layout.convsPerLevel; ++j) {
      s -= shrink(l);
      if (s < 1) return { failure: `shrinks below one voxel in level ${l}'s encoder convolutions` };
      sizes.push(s);
    }
    if (l < levels - 1) {
      const f = layout.factors[l]!;
      if (s % f !== 0) return { failure: `leaves level ${l} ${s} voxels, not a multiple of its downsampling factor ${f}` };
      s /= f;
    }
  }
  for (let l = levels - 2; l >= 0; --l) {
    s *= layout.factors[l]!;
    sizes.push(s);
    for (let j = 0; j < layout.convsPerLevel; ++j) {
      s -= shrink(l);
      if (s < 1) return { failure: `shrinks below one voxel in level ${l}'s decoder convolutions` };
      sizes.push(s);
    }
  }
  sizes.push(s);
  return { sizes, output: s };
}

/** The product of an axis's downsampling factors: the period of the input sizes that fit. */
export function period(layout: AxisLayout): number {
  return layout.factors.reduce((a, b) => a * b, 1);
}

/** The input sizes nearest to `size` that fit (below and above), each with its output size. */
export function nearestFits(size: number, layout: AxisLayout): Array<{ input: number; output: number }> {
  const step = period(layout);
  const found: Array<{ input: number; output: number }> = [];
  for (let s = size - 1; s >= 1 && s >= size - step; --s) {
    const r = traceAxis(s, layout);
    if ('output' in r) {
      found.push({ input: s, output: r.output });
      break;
    }
  }
  // Above: within one period past the smallest size that fits (the sizes that fit repeat from there).
  for (let s = size + 1; s <= size + step + smallestFit(layout); ++s) {
    const r = traceAxis(s, layout);
    if ('output' in r) {
      found.push({ input: s, output: r.output });
      break;
    }
  }
  return found;
}

/** The smallest input size that fits along an axis. */
export function smallestFit(layout: AxisLayout): number {
  // Every convolution can take off at most (kernel - 1) voxels at a resolution up to the product of
  // the factors below it, so a fitting size exists below this bound.
  let bound = 1, scale = 1;
  layout.kernels.forEach((k, l) => {
    bound += 2 * layout.convsPerLevel * (k - 1) * scale;
    scale *= layout.factors[l] ?? 1;
  });
  bound += 2 * scale;
  for (let s = 1; s <= bound * 2; ++s) if ('output' in traceAxis(s, layout)) return s;
  throw new SegvolError('ERR_SHAPE', 'affinityUNet: no input size fits this U-Net along an axis; check the kernels and downsampling factors');
}
