// Pooling, max-filtering and resampling, each with its gradient beside it.
import { defineOp } from '../autograd/tape';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import {
  perAxis, poolGeometry, spatialRank, upsampleMode, upsampleSize,
  type AvgPoolOptions, type MaxFilterOptions, type PoolOptions, type UpsampleOptions,
} from './geometry';

export function poolingOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;
  const filterGeometry = (options: MaxFilterOptions) => ({ kernel: options.kernel, stride: 1, dilation: options.dilation ?? 1 });

  function maxPoolBackward(x: Tensor, dy: Tensor, options: PoolOptions): Tensor {
    const op = 'maxPoolBackward';
    return t(native.maxPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, options, op)));
  }
  function maxFilterBackward(x: Tensor, dy: Tensor, options: MaxFilterOptions): Tensor {
    const op = 'maxFilterBackward';
    return t(native.maxPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, filterGeometry(options), op)));
  }
  function avgPoolBackward(x: Tensor, dy: Tensor, options: AvgPoolOptions): Tensor {
    const op = 'avgPoolBackward';
    return t(native.avgPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, options, op)));
  }
  /** inputShape: the shape of upsample's input. */
  function upsampleBackward(dy: Tensor, inputShape: readonly number[], options: Omit<UpsampleOptions, 'size' | 'scale'> = {}): Tensor {
    const op = 'upsampleBackward';
    const n = spatialRank(dy, op);
    const inputSize = perAxis(inputShape.slice(2), n, 1, op, 'inputShape spatial sizes', 1);
    return t(native.upsampleBackward(impl, h(dy, op, 'output gradient'), inputSize, upsampleMode(options, op),
      options.alignCorners ?? false));
  }

  // Pooling ops whose gradient needs their input alone.
  const pooling = <O>(name: string, forward: (x: Tensor, options: O) => Tensor, backward: (x: Tensor, dy: Tensor, options: O) => Tensor) =>
    defineOp(name, (op, x: Tensor, options: O): Tensor => {
      const y = forward(x, options);
      op.record({ inputs: [x], outputs: [y], save: [x], backward: ([dy], [xs]) => [backward(xs!, dy!, options)] });
      return y;
    });

  return {
    ops: {
      /** Max pooling; NaN propagates, padding never wins. */
      maxPool: pooling<PoolOptions>('maxPool', (x, options) => t(native.maxPool(impl, h(x, 'maxPool', 'input'), poolGeometry(x, options, 'maxPool'))),
        maxPoolBackward),
      /**
       * Max-filtering: a max-pooling window at stride 1 with an optionally dilated window, so
       * the output stays dense (sliding-window ConvNets in one pass). Output size: in - (k-1)*dilation.
       */
      maxFilter: pooling<MaxFilterOptions>('maxFilter',
        (x, options) => t(native.maxPool(impl, h(x, 'maxFilter', 'input'), poolGeometry(x, filterGeometry(options), 'maxFilter'))), maxFilterBackward),
      avgPool: pooling<AvgPoolOptions>('avgPool', (x, options) => t(native.avgPool(impl, h(x, 'avgPool', 'input'), poolGeometry(x, options, 'avgPool'))),
        avgPoolBackward),
      /** Nearest or bi/trilinear resize of the spatial axes (PyTorch's interpolate). */
      upsample: defineOp('upsample', (op, x: Tensor, options: UpsampleOptions): Tensor => {
        const size = upsampleSize(x, options, op.name);
        const mode = upsampleMode(options, op.name);
        const y = t(native.upsample(impl, h(x, op.name, 'input'), size, mode, options.alignCorners ?? false));
        const inputShape = x.shape;
        op.record({
          inputs: [x], outputs: [y],
          backward: ([dy]) => [upsampleBackward(dy!, inputShape, { mode, ...(options.alignCorners ? { alignCorners: true } : {}) })],
        });
        return y;
      }),
    },
    backward: { maxPoolBackward, maxFilterBackward, avgPoolBackward, upsampleBackward },
  };
}
