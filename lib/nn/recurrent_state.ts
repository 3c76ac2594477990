// What the recurrent layers share: option checks, and states stacked per layer and
// direction as PyTorch's (layers * directions, batch, features).
import { describe, SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { checkObject, rejectUnknown } from '../core/validate';
import { ops } from '../ops';

export function checkNonNegativeInteger(value: unknown, layer: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as an integer >= 0, received ${describe(value)}`);
  }
  return value;
}

export function dropoutOption(p: unknown, layer: string): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new SegvolError('ERR_ARGUMENT', `${layer}: expected dropout in [0, 1), received ${describe(p)}`);
  return p;
}

export const recurrentKeys = ['inputSize', 'hiddenSize', 'numLayers', 'bias', 'batchFirst', 'dropout', 'bidirectional', 'init'];

export function rejectUnknownOptions(options: object, allowed: readonly string[], layer: string): void {
  checkObject(options, layer, 'an options object');
  rejectUnknown(options, allowed, layer);
}

/** Entry i of a (L, ...) stack of states as (...). */
export function stateOf(stack: Tensor, i: number): Tensor {
  const one = ops.narrow(stack, 0, i, 1);
  const out = one.reshape(stack.shape.slice(1));
  one.dispose();
  return out;
}

/** States (...) stacked along a new first axis. */
export function stack(states: Tensor[]): Tensor {
  const lifted = states.map((s) => s.reshape([1, ...s.shape]));
  const out = lifted.length === 1 ? lifted[0]! : ops.concat(lifted, 0);
  if (lifted.length > 1) for (const t of lifted) t.dispose();
  return out;
}

export function checkState(t: Tensor | undefined, expected: number[], layer: string, name: string): void {
  if (t === undefined) return;
  if (!(t instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as a Tensor, received ${describe(t)}`);
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new SegvolError('ERR_SHAPE', `${layer}: expected ${name} of shape (${expected.join(', ')}) (layers * directions, batch, features), ` +
      `received (${t.shape.join(', ')})`);
  }
}
