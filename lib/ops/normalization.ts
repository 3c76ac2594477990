// Batch normalization with its gradient beside it.
import { defineOp } from '../autograd/tape';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';

export interface BatchNormOptions {
  gamma: Tensor;
  beta: Tensor;
  /** Updated in place in training mode. */
  runningMean: Tensor;
  runningVar: Tensor;
  training: boolean;
  /** Weight of the new batch statistic in the running average (PyTorch's convention). Default 0.1. */
  momentum?: number;
  eps?: number;
}

export interface BatchNormResult {
  y: Tensor;
  /** The statistics the output was normalised with (batch or running); backward needs them. */
  mean: Tensor;
  invStd: Tensor;
}

export interface BatchNormGradients {
  dx: Tensor;
  dgamma: Tensor;
  dbeta: Tensor;
}

export function normalizationOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;

  /** mean and invStd: from batchNorm's result; training: as in the forward call. */
  function batchNormBackward(x: Tensor, dy: Tensor, saved: { gamma: Tensor; mean: Tensor; invStd: Tensor; training: boolean }): BatchNormGradients {
    const op = 'batchNormBackward';
    const r = native.batchNormBackward(impl, h(x, op, 'input'), h(saved.gamma, op, 'gamma'), h(saved.mean, op, 'mean'),
      h(saved.invStd, op, 'invStd'), Boolean(saved.training), h(dy, op, 'output gradient'));
    return { dx: t(r.dx), dgamma: t(r.dgamma), dbeta: t(r.dbeta) };
  }

  return {
    ops: {
      /** Batch normalization per channel of x: (N, C, ...). Differentiable in x, gamma and beta (y only). */
      batchNorm: defineOp('batchNorm', (op, x: Tensor, options: BatchNormOptions): BatchNormResult => {
        const momentum = options.momentum ?? 0.1;
        const eps = options.eps ?? 1e-5;
        const training = Boolean(options.training);
        const r = native.batchNorm(impl, h(x, op.name, 'input'), h(options.gamma, op.name, 'gamma'), h(options.beta, op.name, 'beta'),
          h(options.runningMean, op.name, 'runningMean'), h(options.runningVar, op.name, 'runningVar'), training, momentum, eps);
        const result = { y: t(r.y), mean: t(r.mean), invStd: t(r.invStd) };
        op.record({
          inputs: [x, options.gamma, options.beta], outputs: [result.y], save: [x, options.gamma, result.mean, result.invStd],
          backward: ([dy], [xs, gamma, mean, invStd]) => {
            const g = batchNormBackward(xs!, dy!, { gamma: gamma!, mean: mean!, invStd: invStd!, training });
            return [g.dx, g.dgamma, g.dbeta];
          },
        });
        return result;
      }),
    },
    backward: { batchNormBackward },
  };
}
