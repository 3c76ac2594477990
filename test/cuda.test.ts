// CUDA parity: every op case of test/cases.ts on cuda tensors against the CPU
// backend (tolerance: ten times the case's own, for cuDNN's other summation
// order). Without a usable CUDA backend these tests log why and pass;
// `npm run test:gpu` (SEGVOL_REQUIRE_CUDA=1) turns that into a failure.
import test from 'ava';
import { backends, computeLoss, ops, Optimizer, Tensor } from '../lib';
import { assertClose } from './helpers';
import { opCases } from './cases';
import { compareDevices } from './harness';

const cuda = backends().find((b) => b.name === 'cuda')!;
const required = process.env.SEGVOL_REQUIRE_CUDA === '1';

test('the cuda backend reports its state', (t) => {
  if (cuda.available) {
    t.regex(cuda.detail, /MiB, cuDNN \d+/);
  } else {
    t.log(`cuda unavailable: ${cuda.reason}`);
    t.false(required, `SEGVOL_REQUIRE_CUDA=1 but cuda is unavailable: ${cuda.reason}`);
    t.regex(cuda.reason, /^(not compiled|no CUDA device|libcudnn|cuDNN lacks)/);
  }
});

for (const c of opCases) {
  test(`cuda vs cpu: ${c.name}`, (t) => {
    if (!cuda.available) {
      t.log(`skipped: cuda unavailable (${cuda.reason})`);
      t.false(required);
      return;
    }
    compareDevices(t, c, ops);
  });
}

test('cuda vs cpu: losses and optimizer updates', (t) => {
  if (!cuda.available) {
    t.log(`skipped: cuda unavailable (${cuda.reason})`);
    t.false(required);
    return;
  }
  const probs = Float32Array.from({ length: 2 * 3 * 20 }, (_, i) => 0.05 + ((i * 7919) % 90) / 100);
  const labels = Float32Array.from({ length: 2 * 20 }, (_, i) => i % 3);
  for (const kind of ['squaredError', 'crossEntropy', 'softDice', 'softIoU'] as const) {
    const a = computeLoss('optimized', Tensor.fromArray(probs, [2, 3, 20]), Tensor.fromArray(labels, [2, 20]), { kind });
    const b = computeLoss('optimized', Tensor.fromArray(probs, [2, 3, 20], { device: 'cuda' }), Tensor.fromArray(labels, [2, 20], { device: 'cuda' }), { kind });
    t.true(Math.abs(a.loss - b.loss) < 1e-5 * Math.max(1, Math.abs(a.loss)), `${kind}: ${b.loss} vs ${a.loss}`);
    assertClose(t, b.grad.toArray(), a.grad.toArray(), { abs: 1e-5, rel: 1e-4 }, `${kind} gradient`);
  }
  for (const kind of ['rmspropMomentum', 'sgd', 'adam'] as const) {
    const init = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const grad = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i));
    const cpu = new Map([['w', Tensor.fromArray(init, [64])]]);
    const gpu = new Map([['w', Tensor.fromArray(init, [64], { device: 'cuda' })]]);
    const oc = new Optimizer({ kind });
    const og = new Optimizer({ kind });
    for (let s = 0; s < 3; ++s) {
      oc.step(cpu, new Map([['w', Tensor.fromArray(grad, [64])]]), 0.01);
      og.step(gpu, new Map([['w', Tensor.fromArray(grad, [64], { device: 'cuda' })]]), 0.01);
    }
    assertClose(t, gpu.get('w')!.toArray(), cpu.get('w')!.toArray(), { abs: 1e-6, rel: 1e-5 }, kind);
  }
});
