// The typed op set: one factory per op family (each op's gradient sits beside
// it), merged per implementation: 'optimized' (the backends) or 'reference'
// (the test oracle). Ops called while a GradientTape records are taped.
import type { ImplementationName } from '../core/native';
import { convolutionOps } from './convolution';
import { elementwiseOps } from './elementwise';
import { layoutOps } from './layout';
import { lossOps } from './loss';
import { normalizationOps } from './normalization';
import { poolingOps } from './pooling';
import { recurrentOps } from './recurrent';
import { rnnOps } from './rnn';

export type { PerAxis, ConvOptions, ConvTransposeOptions, PoolOptions, AvgPoolOptions, MaxFilterOptions, UpsampleOptions } from './geometry';
export { inversePermutation } from './geometry';
export type { GradientRequest, ConvGradients } from './convolution';
export type { BatchNormOptions, BatchNormResult, BatchNormGradients } from './normalization';
export type { Activation } from './elementwise';
export type { RnnCellKind, RnnWeights, RnnOptions, RnnResult, RnnGradients } from './rnn';
export type { UpsampleModeName as UpsampleMode } from '../core/native';
export { lossKinds, computeLoss, type LossKind, type LossOptions, type LossNormalization } from './loss';

/** Builds the op set of one implementation. */
export function createOps(impl: ImplementationName) {
  return {
    ...convolutionOps(impl),
    ...poolingOps(impl),
    ...normalizationOps(impl),
    ...elementwiseOps(impl),
    ...layoutOps(impl),
    ...recurrentOps(impl),
    ...rnnOps(impl),
    ...lossOps(impl),
  };
}

export type Ops = ReturnType<typeof createOps>;

/** The ops on each tensor's own device (CPU: oneDNN + OpenMP; CUDA when built). */
export const ops: Ops = createOps('optimized');
