// The C-LSTM scan and the PyraMiD-LSTM layer against the independent PyTorch
// implementation (test/fixtures/pyramid_reference.py): outputs, dx and every
// parameter gradient, optimized and reference backends. Tolerance 2e-4 abs +
// 2e-4 rel: float32 through up to 7 recurrent steps of 3x3/5x5 convolutions with
// weights scaled so the gates saturate, vs float64 in PyTorch. On cuda the
// tolerance is 1e-3: cuDNN may pick Winograd/FFT algorithms, whose rounding
// differs from a direct convolution's by about that much at these sizes.
import test, { type ExecutionContext } from 'ava';
import * as path from 'node:path';
import { ops, readSafetensors, Tensor, type ClstmWeights, type Device as DeviceName, type Direction } from '../lib';
import { optimized, reference, type OpsWithBackward as Ops } from '../lib/testing';
import { assertClose, cudaTest } from './helpers';

const cpuTolerance = { abs: 2e-4, rel: 2e-4 };
const cudaTolerance = { abs: 1e-3, rel: 1e-3 };
const dir = path.join(__dirname, 'fixtures', 'pyramid');

function load(name: string, device: DeviceName = 'cpu') {
  const f = readSafetensors(path.join(dir, `${name}.safetensors`));
  const get = (key: string) => {
    const a = f.tensors.get(key);
    if (!a) throw new Error(`fixture ${name} has no ${key}`);
    return Tensor.fromArray(a.data, a.shape, { device });
  };
  return { case: JSON.parse(f.metadata.case!) as Record<string, unknown>, get, has: (k: string) => f.tensors.has(k) };
}

const implementations: Array<[string, Ops, DeviceName]> = [['optimized', optimized, 'cpu'], ['reference', reference, 'cpu'], ['cuda', optimized, 'cuda']];

// cuda cases are skipped (the reason in the title) where cuda is unavailable; see cudaTest.
type Declare = (title: string, fn: (t: ExecutionContext) => void | Promise<void>) => void;
const declare = (device: DeviceName): Declare => (device === 'cuda' ? cudaTest : (title, fn) => test(title, fn));

for (const name of ['scan_minusD_k5', 'scan_plusH_k3_initial_state', 'scan_minusW_k3']) {
  for (const [implName, o, device] of implementations) {
    declare(device)(`C-LSTM scan ${name} matches PyTorch (${implName})`, (t) => {
      const tolerance = device === 'cuda' ? cudaTolerance : cpuTolerance;
      const f = load(name, device);
      const weights: ClstmWeights = { wx: f.get('wx'), bx: f.get('bx'), wh: f.get('wh'), bh: f.get('bh') };
      const initial = f.case.initialState as boolean;
      const r = o.clstmScan(f.get('x'), weights, {
        direction: f.case.direction as Direction,
        ...(initial ? { h0: f.get('h0'), c0: f.get('c0') } : {}),
      });
      assertClose(t, r.h, f.get('h'), tolerance, 'h');
      assertClose(t, r.hLast, f.get('hLast'), tolerance, 'hLast');
      assertClose(t, r.cLast, f.get('cLast'), tolerance, 'cLast');
      const g = o.clstmScanBackward(r.saved, { dh: f.get('dh'), dhLast: f.get('dhLast'), dcLast: f.get('dcLast') });
      assertClose(t, g.dx, f.get('dx'), tolerance, 'dx');
      assertClose(t, g.grads.dwx, f.get('dwx'), tolerance, 'dwx');
      assertClose(t, g.grads.dbx, f.get('dbx'), tolerance, 'dbx');
      assertClose(t, g.grads.dwh, f.get('dwh'), tolerance, 'dwh');
      assertClose(t, g.grads.dbh, f.get('dbh'), tolerance, 'dbh');
      if (initial) {
        assertClose(t, g.dh0!, f.get('dh0'), tolerance, 'dh0');
        assertClose(t, g.dc0!, f.get('dc0'), tolerance, 'dc0');
      } else {
        t.is(g.dh0, undefined);
      }
    });
  }
}

for (const name of ['layer_k3_N2', 'layer_k5']) {
  for (const [implName, o, device] of implementations) {
    declare(device)(`PyraMiD-LSTM layer ${name} matches PyTorch (${implName})`, async (t) => {
      const tolerance = device === 'cuda' ? cudaTolerance : cpuTolerance;
      const f = load(name, device);
      const weights = [0, 1, 2, 3, 4, 5].map((d) => ({
        wx: f.get(`dir${d}.wx`), bx: f.get(`dir${d}.bx`), wh: f.get(`dir${d}.wh`), bh: f.get(`dir${d}.bh`),
      }));
      const r = implName !== 'reference' ? await o.pyramidLstmAsync(f.get('x'), weights) : o.pyramidLstm(f.get('x'), weights);
      assertClose(t, r.y, f.get('y'), tolerance, 'y');
      const g = implName !== 'reference' ? await o.pyramidLstmBackwardAsync(r.saved, f.get('dy'))
        : o.pyramidLstmBackward(r.saved, f.get('dy'));
      assertClose(t, g.dx, f.get('dx'), tolerance, 'dx');
      for (let d = 0; d < 6; ++d) {
        const grads = g.grads[d]!;
        assertClose(t, grads.dwx, f.get(`dir${d}.dwx`), tolerance, `dir${d}.dwx`);
        assertClose(t, grads.dbx, f.get(`dir${d}.dbx`), tolerance, `dir${d}.dbx`);
        assertClose(t, grads.dwh, f.get(`dir${d}.dwh`), tolerance, `dir${d}.dwh`);
        assertClose(t, grads.dbh, f.get(`dir${d}.dbh`), tolerance, `dir${d}.dbh`);
      }
      r.saved.dispose();
      const err = t.throws(() => o.pyramidLstmBackward(r.saved, f.get('dy'))) as Error & { code?: string };
      t.is(err.code, 'ERR_DISPOSED');
    });
  }
}

test('a PyraMiD-LSTM forward pass keeps 6 directions x (gates 4O + c O + h O) per voxel; inference keeps nothing', (t) => {
  const [n, c, o, d, h, w] = [1, 3, 4, 5, 6, 7];
  const x = Tensor.full([n, c, d, h, w], 0.1);
  const weights = [0, 1, 2, 3, 4, 5].map(() => ({
    wx: Tensor.full([4 * o, c, 3, 3], 0.01), bx: Tensor.zeros([4 * o]), wh: Tensor.full([4 * o, o, 3, 3], 0.01), bh: Tensor.zeros([4 * o]),
  }));
  const r = ops.pyramidLstm(x, weights);
  const voxels = n * d * h * w;
  // The input is referenced, not copied: backward re-lays it.
  t.is(r.saved.bytes, 4 * voxels * 6 * 6 * o);
  const inference = ops.pyramidLstm(x, weights, { keepForBackward: false });
  t.is(inference.saved.bytes, 0);
  t.deepEqual(inference.y.toArray(), r.y.toArray());
  const err = t.throws(() => optimized.pyramidLstmBackward(inference.saved, r.y)) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /kept nothing for backward \(it ran for inference\)/);
  r.saved.dispose();
  t.is(r.saved.bytes, 0);
});

// Directions whose scans have one shape run as one grouped scan (always on CUDA;
// SEGVOL_SCAN_GROUPS forces it here). A cube groups all six, H == W groups four.
// Tolerance 1e-5: the same float32 arithmetic, summed in another order.
for (const shape of [[1, 2, 5, 5, 5], [2, 2, 4, 6, 6], [1, 3, 4, 6, 7]]) {
  test(`grouped scans of a (${shape.join(', ')}) volume equal one direction at a time`, (t) => {
    const [, c] = shape as [number, number];
    const o = 3;
    let seed = 1;
    const random = (dims: number[]) => Tensor.fromArray(Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) },
      () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.8), dims);
    const x = random(shape);
    const weights = [0, 1, 2, 3, 4, 5].map(() => ({ wx: random([4 * o, c, 3, 3]), bx: random([4 * o]), wh: random([4 * o, o, 3, 3]), bh: random([4 * o]) }));
    const dy = random([shape[0]!, o, ...shape.slice(2)]);
    const run = (groups: string) => {
      const before = process.env.SEGVOL_SCAN_GROUPS;
      process.env.SEGVOL_SCAN_GROUPS = groups;
      try {
        const r = ops.pyramidLstm(x, weights);
        const g = optimized.pyramidLstmBackward(r.saved, dy);
        return { y: r.y, dx: g.dx, grads: g.grads };
      } finally {
        if (before === undefined) delete process.env.SEGVOL_SCAN_GROUPS; else process.env.SEGVOL_SCAN_GROUPS = before;
      }
    };
    const single = run('1');
    const grouped = run('6');
    const tol = { abs: 1e-5, rel: 1e-5 };
    assertClose(t, grouped.y, single.y, tol, 'y');
    assertClose(t, grouped.dx, single.dx, tol, 'dx');
    for (let d = 0; d < 6; ++d) {
      for (const k of ['dwx', 'dbx', 'dwh', 'dbh'] as const) assertClose(t, grouped.grads[d]![k], single.grads[d]![k], tol, `dir${d}.${k}`);
    }
    const ref = reference.pyramidLstm(x, weights);
    assertClose(t, grouped.y, ref.y, { abs: 2e-5, rel: 2e-5 }, 'y vs reference');
  });
}
