// The slices where a prediction is most wrong, for a reviewer to look at first (segvol
// evaluate --out, and the viewer's Evaluation tab). Label volumes count the voxels whose
// class or id differs; boundary maps count the pixels on the wrong side of 0.5. Slices are
// z planes: EM stacks and MR volumes are both annotated, and scored, slice by slice.
import type { Shape3 } from './metrics';

export interface SliceError {
  /** The axis the slice is normal to (0: z). */
  axis: 0;
  index: number;
  /** Voxels wrong in the slice. */
  errors: number;
  /** errors / voxels of the slice. */
  share: number;
}

/** The `count` slices with the most wrong voxels, most first (slices without errors are left out). */
export function worstSlices(pred: ArrayLike<number>, truth: ArrayLike<number>, shape: Shape3, options: { probabilities: boolean; count?: number }): SliceError[] {
  const [d, h, w] = [shape[0]!, shape[1]!, shape[2]!];
  const plane = h * w;
  const wrong = (p: number, t: number) => (options.probabilities ? p > 0.5 !== t > 0.5 : p !== t);
  const slices: SliceError[] = [];
  for (let z = 0; z < d; ++z) {
    let errors = 0;
    for (let i = z * plane; i < (z + 1) * plane; ++i) if (wrong(pred[i]!, truth[i]!)) ++errors;
    if (errors > 0) slices.push({ axis: 0, index: z, errors, share: errors / plane });
  }
  return slices.sort((a, b) => b.errors - a.errors || a.index - b.index).slice(0, options.count ?? 10);
}
