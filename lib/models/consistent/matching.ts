// The consistent ConvLSTM's loss: soft IoU between predicted and true object masks,
// the pairs chosen by the Hungarian method (Gonda et al., section 2.5). Computed on the
// host (a cost matrix and an assignment are not tensor work) as one taped op.
import { defineOp } from '../../autograd/tape';
import { linearSumAssignment, type Assignment } from './assignment';
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';

export interface MatchedSoftIoU {
  /** (1): the mean over max(M, G) objects of the matched pairs' soft IoU losses, plus the unmatched terms. */
  loss: Tensor;
  /** Which prediction (rows) each true object (cols) was matched with. */
  assignment: Assignment;
  /** The (M x G) soft IoU losses the matching minimised, row-major. */
  costs: Float64Array;
}

/**
 * sIoU(m, g) = 1 - sum(m g) / sum(m + g - m g) for every prediction m (probabilities) and
 * true mask g (0 or 1), Hungarian matching of predictions to objects, and the loss
 *   (sum of matched sIoU + sum over unmatched predictions of mean(m) + unmatched objects) / max(M, G).
 * An unmatched prediction is pushed towards an empty mask; an object nobody predicts costs 1.
 * Two empty masks have sIoU 0.
 * masks: (M, ...) probabilities; truth: (G, ...) masks of the same per-object size.
 */
export const matchedSoftIoU = defineOp('matchedSoftIoU', (op, masks: Tensor, truth: Tensor | { data: Float32Array; count: number }): MatchedSoftIoU => {
  if (!(masks instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `matchedSoftIoU: expected the masks as a Tensor, received ${describe(masks)}`);
  const m = masks.shape[0]!;
  const n = masks.size / Math.max(1, m);
  const g = truth instanceof Tensor ? truth.shape[0]! : truth.count;
  const t = truth instanceof Tensor ? truth.toArray() : truth.data;
  if (t.length !== g * n) {
    throw new SegvolError('ERR_SHAPE', `matchedSoftIoU: ${g} true masks of ${n} voxels need ${g * n} values (like the predicted masks (${masks.shape.join(', ')})), received ${t.length}`);
  }
  const p = masks.toArray();
  // Per pair: intersection I = sum(m g) and union U = sum(m) + sum(g) - I.
  const sumP = new Float64Array(m), sumT = new Float64Array(g);
  for (let i = 0; i < m; ++i) for (let k = 0; k < n; ++k) sumP[i] += p[i * n + k]!;
  for (let j = 0; j < g; ++j) for (let k = 0; k < n; ++k) sumT[j] += t[j * n + k]!;
  const inter = new Float64Array(m * g);
  for (let i = 0; i < m; ++i) {
    for (let j = 0; j < g; ++j) {
      let s = 0;
      for (let k = 0; k < n; ++k) s += p[i * n + k]! * t[j * n + k]!;
      inter[i * g + j] = s;
    }
  }
  const costs = new Float64Array(m * g);
  for (let q = 0; q < m * g; ++q) {
    const union = sumP[Math.floor(q / g)]! + sumT[q % g]! - inter[q]!;
    costs[q] = union > 0 ? 1 - inter[q]! / union : 0;
  }
  const assignment = linearSumAssignment(costs, m, g);
  const objects = Math.max(m, g, 1);
  let total = assignment.cost + (g - assignment.rows.length);
  const matched = new Int32Array(m).fill(-1);
  assignment.rows.forEach((r, k) => (matched[r] = assignment.cols[k]!));
  for (let i = 0; i < m; ++i) if (matched[i] < 0) total += sumP[i]! / n;
  const loss = Tensor.fromArray([total / objects], [1], { device: masks.device });
  op.record({
    inputs: [masks], outputs: [loss],
    backward: ([dy]) => {
      const scale = dy!.toArray()[0]! / objects;
      const grad = new Float32Array(m * n);
      for (let i = 0; i < m; ++i) {
        const j = matched[i]!;
        if (j < 0) {
          grad.fill(scale / n, i * n, (i + 1) * n);
          continue;
        }
        const I = inter[i * g + j]!, U = sumP[i]! + sumT[j]! - I;
        if (U <= 0) continue;
        // d(1 - I/U)/dm_k = -(g_k U - I (1 - g_k)) / U^2
        for (let k = 0; k < n; ++k) {
          const gk = t[j * n + k]!;
          grad[i * n + k] = (scale * -(gk * U - I * (1 - gk))) / (U * U);
        }
      }
      return [Tensor.fromArray(grad, masks.shape, { device: masks.device })];
    },
  });
  return { loss, assignment, costs };
});
