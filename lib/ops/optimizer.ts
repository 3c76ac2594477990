// The optimizer update as an op: one parameter updated in place from its gradient
// and two state tensors, natively, on the parameter's device.
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName, type NativeOptimizerHyper } from '../core/native';
import { handleOf, type Tensor } from '../core/tensor';

export type UpdateRule = 'rmspropMomentum' | 'sgd' | 'adam';
export type UpdateHyperparameters = NativeOptimizerHyper;

export function optimizerOps(impl: ImplementationName) {
  return {
    ops: {
      /**
       * Updates param in place (not taped): param, grad, state1 and state2 share one shape and
       * device. The rule's two states are RMSprop's MS and M, SGD's velocity (state2 unused),
       * or Adam's m and v; `name` labels errors.
       */
      optimizerUpdate(rule: UpdateRule, hyper: UpdateHyperparameters, param: Tensor, grad: Tensor, state1: Tensor, state2: Tensor, name = 'a parameter'): void {
        if (!['rmspropMomentum', 'sgd', 'adam'].includes(rule)) {
          throw new SegvolError('ERR_ARGUMENT', `optimizerUpdate: expected rule 'rmspropMomentum', 'sgd' or 'adam', received ${describe(rule)}`);
        }
        native.optimizerUpdate(impl, rule, hyper, handleOf(param, 'optimizer', name), handleOf(grad, 'optimizer', `gradient of ${name}`),
          handleOf(state1, 'optimizer', 'state'), handleOf(state2, 'optimizer', 'state'));
      },
    },
    backward: {},
  };
}
