// The slices where a prediction is most wrong, for a reviewer to look at first (segvol
// evaluate --out, and the viewer's Evaluation tab). Slices are z planes: EM stacks and MR
// volumes are both annotated, and scored, slice by slice. What "wrong" means depends on the
// prediction: class maps count the voxels whose class differs, boundary maps the pixels on
// the wrong side of 0.5, and instance segmentations (ids numbered independently of the
// truth's) score each slice's adapted Rand error, since their ids cannot be compared.
import { metrics, type Shape3 } from './metrics';

export type SliceErrorKind = 'classes' | 'boundary' | 'instances';

export interface SliceError {
  /** The axis the slice is normal to (0: z). */
  axis: 0;
  index: number;
  /** The slice's error: the share of its voxels wrong (classes, boundary), or its adapted Rand error (instances). */
  error: number;
  /** What `error` measures. */
  measure: 'share of voxels wrong' | 'adapted Rand error';
}

/** The `count` slices with the largest error, largest first (slices without error are left out). */
export function worstSlices(pred: ArrayLike<number>, truth: ArrayLike<number>, shape: Shape3, options: { kind: SliceErrorKind; count?: number }): SliceError[] {
  const [d, h, w] = [shape[0]!, shape[1]!, shape[2]!];
  const plane = h * w;
  const slices: SliceError[] = [];
  for (let z = 0; z < d; ++z) {
    let error: number;
    if (options.kind === 'instances') {
      const p = Float64Array.from({ length: plane }, (_, i) => pred[z * plane + i]!);
      const t = Float64Array.from({ length: plane }, (_, i) => truth[z * plane + i]!);
      error = t.some((v) => v !== 0) ? metrics.rand(p, t).adaptedRandError : 0;
    } else {
      let wrong = 0;
      for (let i = z * plane; i < (z + 1) * plane; ++i) {
        if (options.kind === 'boundary' ? pred[i]! > 0.5 !== truth[i]! > 0.5 : pred[i] !== truth[i]) ++wrong;
      }
      error = wrong / plane;
    }
    if (error > 0) slices.push({ axis: 0, index: z, error, measure: options.kind === 'instances' ? 'adapted Rand error' : 'share of voxels wrong' });
  }
  return slices.sort((a, b) => b.error - a.error || a.index - b.index).slice(0, options.count ?? 10);
}
