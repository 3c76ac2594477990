// CUDA parity: every op case of test/cases.ts on cuda tensors against the CPU
// backend (tolerance: ten times the case's own, for cuDNN's other summation
// order). Without a usable CUDA backend these tests log why and pass;
// `npm run test:gpu` (SEGVOL_REQUIRE_CUDA=1) turns that into a failure.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backends, computeLoss, ops, Optimizer, Tensor } from '../lib';
import { assertClose } from './helpers';
import { opCases } from './cases';
import { compareDevices } from './harness';

const cuda = backends().find((b) => b.name === 'cuda')!;
const required = process.env.SEGVOL_REQUIRE_CUDA === '1';

test('the cuda backend reports its state', (t) => {
  if (cuda.available) {
    t.regex(cuda.detail, /MiB, (cuDNN \d+|emulated: )/);
  } else {
    t.log(`cuda unavailable: ${cuda.reason}`);
    t.false(required, `SEGVOL_REQUIRE_CUDA=1 but cuda is unavailable: ${cuda.reason}`);
    t.regex(cuda.reason, /^(not compiled|no CUDA device|libcudnn|cuDNN lacks)/);
  }
});

test('the CUDA emulator passes its self-test', (t) => {
  if (!cuda.available || !cuda.detail.includes('emulated')) {
    t.log('skipped: this is not the emulated build (npm run test:emulated runs this)');
    t.pass();
    return;
  }
  // The self-test is built next to the emulated addon (build-emulated/).
  const exe = path.resolve(path.dirname(process.env.SEGVOL_ADDON ?? ''), '..', 'emulation_selftest');
  const r = spawnSync(exe, { encoding: 'utf8' });
  t.is(r.status, 0, `${exe}: ${r.stdout}${r.stderr}`);
  t.regex(r.stdout, /emulation self-test passed/);
  t.notRegex(r.stdout, /^FAIL/m);
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
