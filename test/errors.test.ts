// Bad input: each gives the documented error code and a message saying what was
// expected and what came; the process keeps running and the inputs stay usable.
import test from 'ava';
import { ops, SegvolError, Tensor } from '../lib';
import { optimized } from '../lib/testing';

type Coded = Error & { code?: string };

function expectCode(t: import('ava').ExecutionContext, fn: () => unknown, code: string, pattern: RegExp): void {
  const err = t.throws(fn) as Coded;
  t.is(err?.code, code, err?.message);
  t.regex(err?.message ?? '', pattern);
}

const x2d = () => Tensor.full([1, 3, 8, 8], 0.5);
const w2d = () => Tensor.full([4, 3, 3, 3], 0.1);

test('wrong rank', (t) => {
  const v = Tensor.full([3, 8, 8], 1);
  expectCode(t, () => ops.conv(v, w2d()), 'ERR_SHAPE', /expected input of rank 4 or 5.*received rank 3/);
  expectCode(t, () => ops.maxPool(v, { kernel: 2 }), 'ERR_SHAPE', /rank 4 or 5/);
  expectCode(t, () => ops.softmax(Tensor.full([5], 1)), 'ERR_SHAPE', /softmax: expected input of rank 2 or 3 or 4 or 5/);
  expectCode(t, () => ops.conv(x2d(), Tensor.full([4, 3, 3], 1)), 'ERR_SHAPE', /expected weight of rank 4/);
  expectCode(t, () => Tensor.zeros([1, 1, 1, 1, 1, 1]), 'ERR_SHAPE', /rank 1 to 5/);
});

test('mismatched channels', (t) => {
  expectCode(t, () => ops.conv(x2d(), Tensor.full([4, 2, 3, 3], 0.1)), 'ERR_SHAPE',
    /expected weight's second axis = input channels \/ groups = 3, received weight \(4, 2, 3, 3\)/);
  expectCode(t, () => ops.conv(x2d(), w2d(), { groups: 2 }), 'ERR_SHAPE', /divisible by groups = 2/);
  expectCode(t, () => ops.conv(x2d(), w2d(), { bias: Tensor.zeros([3]) }), 'ERR_SHAPE', /bias of shape \(4,\)/);
  expectCode(t, () => ops.pixelwise(x2d(), Tensor.zeros([5, 4])), 'ERR_SHAPE', /weight of shape \(F, 3\)/);
  expectCode(t, () => ops.convTranspose(x2d(), Tensor.zeros([4, 2, 3, 3])), 'ERR_SHAPE', /first axis to equal the input channels 3/);
  expectCode(t, () => ops.add(x2d(), Tensor.zeros([1, 3, 8, 7])), 'ERR_SHAPE', /shape of a \(1, 3, 8, 8\), received \(1, 3, 8, 7\)/);
  const gamma = Tensor.full([2], 1);
  expectCode(t, () => ops.batchNorm(x2d(), { gamma, beta: gamma, runningMean: gamma, runningVar: gamma, training: true }),
    'ERR_SHAPE', /gamma of shape \(3,\)/);
});

test('kernel larger than the input, and wrong output gradients', (t) => {
  expectCode(t, () => ops.conv(Tensor.full([1, 3, 2, 8], 1), w2d()), 'ERR_SHAPE', /kernel's extent 3 .* exceeds the padded input 2 along axis H/);
  expectCode(t, () => ops.maxFilter(x2d(), { kernel: 2, dilation: 8 }), 'ERR_SHAPE', /window's extent 9 exceeds/);
  expectCode(t, () => optimized.convBackward(x2d(), w2d(), Tensor.zeros([1, 4, 8, 8])), 'ERR_SHAPE',
    /expected the output gradient of shape \(1, 4, 6, 6\)/);
});

test('negative or non-integer sizes and options', (t) => {
  expectCode(t, () => Tensor.zeros([2, -1]), 'ERR_SHAPE', /non-negative integer sizes/);
  expectCode(t, () => Tensor.fromArray([1, 2, 3], [2, 2]), 'ERR_SHAPE', /holds 4 values, but the data has 3/);
  expectCode(t, () => ops.conv(x2d(), w2d(), { stride: 0 }), 'ERR_ARGUMENT', /stride as an integer >= 1/);
  expectCode(t, () => ops.conv(x2d(), w2d(), { padding: -1 }), 'ERR_ARGUMENT', /padding as an integer >= 0/);
  expectCode(t, () => ops.conv(x2d(), w2d(), { dilation: [1, 2, 3] }), 'ERR_ARGUMENT', /2 of them/);
  expectCode(t, () => ops.conv(x2d(), Tensor.full([4, 3, 2, 2], 1), { padding: 'same' }), 'ERR_ARGUMENT', /odd dilated kernel/);
  expectCode(t, () => ops.maxPool(x2d(), { kernel: 2, padding: 2 }), 'ERR_ARGUMENT', /padding at most half the kernel/);
  expectCode(t, () => ops.upsample(x2d(), { scale: 2, size: [4, 4] }), 'ERR_ARGUMENT', /exactly one of size or scale/);
  expectCode(t, () => ops.upsample(x2d(), { size: [4, 4], mode: 'cubic' as 'linear' }), 'ERR_ARGUMENT', /mode 'nearest' or 'linear'/);
  expectCode(t, () => ops.permute(x2d(), [0, 1, 1, 2]), 'ERR_ARGUMENT', /exactly once, received axis 1 twice/);
  expectCode(t, () => ops.flip(x2d(), [4]), 'ERR_ARGUMENT', /received axis 4 out of range/);
  expectCode(t, () => ops.scale(x2d(), NaN), 'ERR_NON_FINITE', /finite factor/);
  expectCode(t, () => ops.sum([]), 'ERR_ARGUMENT', /non-empty array/);
  expectCode(t, () => Tensor.fromArray([1], [1], { device: 'tpu' as 'cpu' }), 'ERR_ARGUMENT', /device 'cpu' or 'cuda'/);
  expectCode(t, () => ops.conv(x2d(), 'weights' as unknown as Tensor), 'ERR_ARGUMENT', /weight to be a (segvol )?Tensor/);
});

test('non-finite weights are rejected before compute; NaN data propagates like PyTorch', (t) => {
  const w = Tensor.fromArray(Float32Array.from({ length: 108 }, (_, i) => (i === 5 ? NaN : 0.1)), [4, 3, 3, 3]);
  expectCode(t, () => ops.conv(x2d(), w), 'ERR_NON_FINITE', /finite values in weight/);
  const b = Tensor.fromArray([0, Infinity, 0, 0], [4]);
  expectCode(t, () => ops.conv(x2d(), w2d(), { bias: b }), 'ERR_NON_FINITE', /finite values in bias/);
  // Data may hold NaN (masked voxels, for example): max-pooling lets it win, as PyTorch does.
  const data = Tensor.fromArray([1, NaN, 3, 4], [1, 1, 2, 2]);
  const pooled = ops.maxPool(data, { kernel: 2 }).toArray();
  t.true(Number.isNaN(pooled[0]));
  const activated = ops.tanh(data).toArray();
  t.true(Number.isNaN(activated[1]));
  t.true(Math.abs(activated[2]! - Math.tanh(3)) < 1e-6, 'finite voxels beside a NaN are unaffected');
});

test('an empty (zero-length) axis is refused where it has no meaning', (t) => {
  expectCode(t, () => ops.conv(Tensor.zeros([1, 3, 0, 8]), w2d()), 'ERR_SHAPE', /no zero-length axis.*axis 2 is empty/);
  expectCode(t, () => ops.maxPool(Tensor.zeros([0, 3, 4, 4]), { kernel: 2 }), 'ERR_SHAPE', /axis 0 is empty/);
  // Elementwise ops on empty tensors are fine and return empty tensors.
  t.deepEqual(ops.relu(Tensor.zeros([0, 3])).shape, [0, 3]);
});

test('after a rejected call the inputs are intact and the next call works', (t) => {
  const x = x2d();
  const w = w2d();
  t.throws(() => ops.conv(x, w, { groups: 3 }));
  t.false(x.disposed);
  t.deepEqual(x.toArray()[0], 0.5);
  const y = ops.conv(x, w);
  t.deepEqual(y.shape, [1, 4, 6, 6]);
  // 27 taps of 0.5 * 0.1
  t.true(Math.abs(y.toArray()[0]! - 1.35) < 1e-5);
});

test('errors are SegvolError (TypeScript checks) or Error (native checks), both with a stable code', (t) => {
  const tsErr = t.throws(() => ops.conv(x2d(), w2d(), { stride: 0 }));
  t.true(tsErr instanceof SegvolError);
  const nativeErr = t.throws(() => ops.conv(x2d(), Tensor.full([4, 2, 3, 3], 0.1))) as Coded;
  t.true(nativeErr instanceof Error);
  t.is(nativeErr.code, 'ERR_SHAPE');
  t.regex(nativeErr.message, /^segvol: conv:/);
});

test('C-LSTM / PyraMiD-LSTM bad input: clear errors before compute', (t) => {
  const x = Tensor.full([1, 3, 4, 7, 6], 0.5);
  const weights = (c: number, o: number, k: number, fill = 0.01) => ({
    wx: Tensor.full([4 * o, c, k, k], fill), bx: Tensor.zeros([4 * o]),
    wh: Tensor.full([4 * o, o, k, k], fill), bh: Tensor.zeros([4 * o]),
  });
  expectCode(t, () => ops.clstmScan(x, weights(3, 2, 4), { direction: 0 }), 'ERR_SHAPE', /odd kernel size/);
  expectCode(t, () => ops.clstmScan(x, weights(3, 2, 5), { direction: 2 }), 'ERR_SHAPE',
    /kernel 5x5 is larger than the 4x6 planes that direction 2 \(\+H\) scans/);
  expectCode(t, () => ops.clstmScan(x, weights(2, 2, 3), { direction: 0 }), 'ERR_SHAPE', /with 3 input channels like the volume/);
  expectCode(t, () => ops.clstmScan(Tensor.zeros([1, 3, 0, 7, 6]), weights(3, 2, 3), { direction: 0 }), 'ERR_SHAPE', /axis 2 is empty/);
  expectCode(t, () => ops.clstmScan(x, weights(3, 2, 3), { direction: 6 as 0 }), 'ERR_ARGUMENT', /direction 0\.\.5/);
  const bad = weights(3, 2, 3);
  const nan = Tensor.fromArray(Float32Array.from({ length: 8 }, (_, i) => (i === 3 ? NaN : 0)), [8]);
  expectCode(t, () => ops.clstmScan(x, { ...bad, bh: nan }, { direction: 1 }), 'ERR_NON_FINITE', /finite values in bh of direction 1/);
  expectCode(t, () => ops.clstmScan(x, weights(3, 2, 3), { direction: 0, h0: Tensor.zeros([1, 2, 7, 6]) }), 'ERR_ARGUMENT',
    /both h0 and c0 or neither/);
  expectCode(t, () => ops.clstmScan(x, weights(3, 2, 3), { direction: 0, h0: Tensor.zeros([1, 2, 7, 5]), c0: Tensor.zeros([1, 2, 7, 5]) }),
    'ERR_SHAPE', /h0 of shape \(1, 2, 7, 6\)/);
  const six = [0, 1, 2, 3, 4, 5].map(() => weights(3, 2, 3));
  expectCode(t, () => ops.pyramidLstm(x, six.slice(0, 5)), 'ERR_ARGUMENT', /six direction weights/);
  expectCode(t, () => ops.pyramidLstm(x, [...six.slice(0, 5), weights(3, 3, 3)]), 'ERR_SHAPE', /all six directions' wx of one shape/);
  expectCode(t, () => ops.pyramidLstm(Tensor.full([1, 3, 2, 7, 6], 1), six), 'ERR_SHAPE', /larger than the 2x6 planes/);
  // The Promise form rejects with the same error.
  return ops.pyramidLstmAsync(x, [...six.slice(0, 5), { ...six[5]!, bx: nan }]).then(
    () => t.fail('expected a rejection'),
    (err: Coded) => {
      t.is(err.code, 'ERR_NON_FINITE');
    },
  );
});
