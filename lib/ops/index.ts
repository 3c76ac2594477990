// The typed op set: one factory per op family (each op defined with its gradient
// beside it, by defineOp), merged per implementation: 'optimized' (the backends) or
// 'reference' (the test oracle). Ops called while a GradientTape records are taped.
// Only lib/ops calls the addon's tensor computations; the explicit backward
// functions are not part of `ops` (segvol/testing has them, for the tests).
import { setTapeKernels } from '../autograd/tape';
import type { ImplementationName } from '../core/native';
import { clstmOps } from './clstm';
import { collectiveOps } from './collective';
import { convolutionOps } from './convolution';
import { elementwiseOps } from './elementwise';
import { layoutOps } from './layout';
import { lossOps } from './loss';
import { lstmCellOps } from './lstm_cell';
import { targetLossOps } from './target_loss';
import { normalizationOps } from './normalization';
import { optimizerOps } from './optimizer';
import { poolingOps } from './pooling';
import { reduceOps } from './reduce';
import { rnnOps } from './rnn';

export type { PerAxis, ConvOptions, ConvTransposeOptions, PoolOptions, AvgPoolOptions, MaxFilterOptions, UpsampleOptions } from './geometry';
export { inversePermutation } from './geometry';
export type { GradientRequest, ConvGradients } from './convolution';
export type { BatchNormOptions, BatchNormResult, BatchNormGradients } from './normalization';
export type { Activation } from './elementwise';
export type { RnnCellKind, RnnWeights, RnnOptions, RnnResult, RnnGradients } from './rnn';
export type { LstmCellOptions, LstmCellResult, LstmCellGradients } from './lstm_cell';
export type { UpsampleModeName as UpsampleMode } from '../core/native';
export type { UpdateRule, UpdateHyperparameters } from './optimizer';
export { argmaxClasses } from './reduce';
export { lossKinds, computeLoss, checkProbabilities, type LossKind, type LossInput, type LossOptions, type LossNormalization } from './loss';
export { targetLossKinds, computeTargetLoss, type TargetLossKind, type TargetLossOptions } from './target_loss';

function families(impl: ImplementationName) {
  return [convolutionOps(impl), poolingOps(impl), normalizationOps(impl), elementwiseOps(impl), layoutOps(impl), clstmOps(impl), rnnOps(impl), lstmCellOps(impl),
    lossOps(impl), targetLossOps(impl), reduceOps(impl), optimizerOps(impl), collectiveOps(impl)] as const;
}

type Families = ReturnType<typeof families>;
type Merge<T extends readonly unknown[], K extends 'ops' | 'backward'> = T extends readonly [infer H, ...infer R]
  ? (H extends Record<K, infer V> ? V : never) & Merge<R, K> : unknown;

/** The forward ops of one implementation. */
export type Ops = Merge<Families, 'ops'>;
/** The explicit backward functions (convBackward, pyramidLstmBackward, ...): what each op's gradient calls. */
export type BackwardOps = Merge<Families, 'backward'>;

/** Builds the ops of one implementation (and their explicit backward functions). */
export function createOpSet(impl: ImplementationName): { ops: Ops; backward: BackwardOps } {
  const all = families(impl);
  return {
    ops: Object.assign({}, ...all.map((f) => f.ops)) as Ops,
    backward: Object.assign({}, ...all.map((f) => f.backward)) as BackwardOps,
  };
}

/** Builds the op set of one implementation. */
export function createOps(impl: ImplementationName): Ops {
  return createOpSet(impl).ops;
}

/** The ops on each tensor's own device (CPU: oneDNN + OpenMP; CUDA when built). */
export const ops: Ops = createOps('optimized');

const adders = { optimized: ops.add, reference: createOps('reference').add };
setTapeKernels({
  // A gradient sum is not taped (backward runs with no tape recording).
  add: (impl, a, b) => adders[impl](a, b),
  firstNonFinite: (tensors) => ops.firstNonFinite(tensors),
});
