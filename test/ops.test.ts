import test from 'ava';
import { ops, Tensor } from '../lib';
import { optimized, reference } from '../lib/testing';
import { opCases } from './cases';
import { checkFiniteDifferences, compareImplementations } from './harness';

for (const c of opCases) {
  test(`${c.name}: optimized matches reference, forward and backward`, (t) => {
    compareImplementations(t, c, optimized, reference);
  });
  if (c.finiteDifference) {
    test(`${c.name}: gradients match central finite differences`, (t) => {
      checkFiniteDifferences(t, c, optimized);
    });
  }
}

test('vectorised tanh, sigmoid and softmax stay accurate over the whole float range (incl. +-Inf, NaN)', (t) => {
  const values = [-Infinity, -1e30, -100, -88.5, -30, -10, -1, -1e-3, -1e-8, 0, 1e-8, 1e-3, 0.5, 1, 3, 10, 30, 88.5, 100, 1e30, Infinity];
  for (let v = -20; v <= 20; v += 0.37) values.push(v);
  const x = Tensor.fromArray(values, [1, values.length]);
  for (const kind of ['tanh', 'sigmoid'] as const) {
    const fast = ops[kind](x).toArray();
    const exact = reference[kind](x).toArray();
    values.forEach((v, i) => {
      t.true(Math.abs(fast[i]! - exact[i]!) <= 3e-7 + 1e-6 * Math.abs(exact[i]!), `${kind}(${v}) = ${fast[i]}, expected ${exact[i]}`);
    });
  }
  const withNaN = Tensor.fromArray([NaN, 1], [2]);
  t.true(Number.isNaN(ops.tanh(withNaN).toArray()[0]!));
  t.true(Number.isNaN(ops.sigmoid(withNaN).toArray()[0]!));
  const logits = Tensor.fromArray([1000, 0, -1000, 50, 50.5, 49], [1, 3, 2]);
  const p = ops.softmax(logits).toArray();
  const q = reference.softmax(logits).toArray();
  p.forEach((v, i) => t.true(Math.abs(v - q[i]!) < 1e-6, `softmax[${i}] ${v} vs ${q[i]}`));
});

test('2x2 max pooling sends each window\'s gradient to its first maximum on ties, as the reference does, and 0 to uncovered rows and columns', (t) => {
  // Three levels on a 2 x 3 x 9 x 11 volume: most windows hold equal maxima; odd H and W leave a row and a column out.
  const shape = [1, 2, 3, 9, 11];
  const size = shape.reduce((a, b) => a * b, 1);
  const x = Tensor.fromArray(Float32Array.from({ length: size }, (_, i) => ((i * 7) % 5) % 3), shape);
  const options = { kernel: [1, 2, 2], stride: [1, 2, 2] };
  const y = optimized.maxPool(x, options);
  const dy = Tensor.fromArray(Float32Array.from({ length: y.shape.reduce((a, b) => a * b, 1) }, (_, i) => i + 1), y.shape);
  const fast = optimized.maxPoolBackward(x, dy, options).toArray();
  const exact = reference.maxPoolBackward(x, dy, options).toArray();
  t.deepEqual(Array.from(fast), Array.from(exact));
  const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
  t.is(sum(fast), sum(dy.toArray()), 'every window\'s gradient lands once');
});
