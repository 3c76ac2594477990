// A table-driven cross-implementation harness: each OpCase runs its forward and
// backward through the optimized ops and the reference ops and compares them,
// and checks the analytic gradients against central finite differences. A later
// backend (CUDA) runs the same cases against the CPU.
import type { ExecutionContext } from 'ava';
import { Tensor, type Ops } from '../lib';
import { assertClose, randomArray, rng, type Init, type Tolerance } from './helpers';

export interface InputSpec {
  shape: number[];
  init?: Init;
}

export interface OpCase {
  name: string;
  inputs: Record<string, InputSpec>;
  forward(o: Ops, x: Record<string, Tensor>): Tensor;
  /** Gradients of sum(forward(x) * dy) for the inputs that have one. */
  backward(o: Ops, x: Record<string, Tensor>, y: Tensor, dy: Tensor): Record<string, Tensor>;
  /** Optimized vs reference. */
  tolerance: Tolerance;
  /** Analytic vs finite differences; omit to skip (cases too large for it). */
  finiteDifference?: { step: number; tolerance: Tolerance };
}

export function makeInputs(c: OpCase, seed: number): Record<string, Float32Array> {
  const random = rng(seed);
  const out: Record<string, Float32Array> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    out[name] = randomArray(spec.shape.reduce((a, b) => a * b, 1), random, spec.init ?? 'uniform');
  }
  return out;
}

function toTensors(c: OpCase, values: Record<string, Float32Array>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) out[name] = Tensor.fromArray(values[name]!, spec.shape);
  return out;
}

function disposeAll(...groups: Array<Record<string, Tensor> | Tensor>): void {
  for (const g of groups) {
    if (g instanceof Tensor) g.dispose();
    else for (const v of Object.values(g)) v.dispose();
  }
}

/** Forward and every gradient: optimized vs reference. */
export function compareImplementations(t: ExecutionContext, c: OpCase, optimized: Ops, reference: Ops, seed = 1): void {
  const values = makeInputs(c, seed);
  const xo = toTensors(c, values);
  const xr = toTensors(c, values);
  const yo = c.forward(optimized, xo);
  const yr = c.forward(reference, xr);
  t.deepEqual(yo.shape, yr.shape, `${c.name}: output shape`);
  assertClose(t, yo, yr, c.tolerance, `${c.name}: forward`);
  const dyValues = randomArray(yr.size, rng(seed + 7));
  const dyo = Tensor.fromArray(dyValues, yo.shape);
  const dyr = Tensor.fromArray(dyValues, yr.shape);
  const go = c.backward(optimized, xo, yo, dyo);
  const gr = c.backward(reference, xr, yr, dyr);
  t.deepEqual(Object.keys(go).sort(), Object.keys(gr).sort(), `${c.name}: gradient names`);
  for (const name of Object.keys(gr)) {
    t.deepEqual(go[name]!.shape, gr[name]!.shape, `${c.name}: d${name} shape`);
    assertClose(t, go[name]!, gr[name]!, c.tolerance, `${c.name}: d${name}`);
  }
  disposeAll(xo, xr, yo, yr, dyo, dyr, go, gr);
}

/** Analytic gradients of L = sum(y * r) against central differences of L. */
export function checkFiniteDifferences(t: ExecutionContext, c: OpCase, o: Ops, seed = 2): void {
  const fd = c.finiteDifference!;
  const values = makeInputs(c, seed);
  const x = toTensors(c, values);
  const y = c.forward(o, x);
  const r = randomArray(y.size, rng(seed + 11));
  const dy = Tensor.fromArray(r, y.shape);
  const analytic = c.backward(o, x, y, dy);
  disposeAll(x, y, dy);

  const loss = (vals: Record<string, Float32Array>): number => {
    const xs = toTensors(c, vals);
    const out = c.forward(o, xs);
    const data = out.toArray();
    disposeAll(xs, out);
    let total = 0;
    for (let i = 0; i < data.length; ++i) total += data[i]! * r[i]!;
    return total;
  };

  for (const [name, grad] of Object.entries(analytic)) {
    const numeric = new Float32Array(values[name]!.length);
    for (let i = 0; i < numeric.length; ++i) {
      const original = values[name]![i]!;
      values[name]![i] = original + fd.step;
      const plus = loss(values);
      values[name]![i] = original - fd.step;
      const minus = loss(values);
      values[name]![i] = original;
      numeric[i] = (plus - minus) / (2 * fd.step);
    }
    assertClose(t, grad, numeric, fd.tolerance, `${c.name}: d${name} vs finite differences`);
    grad.dispose();
  }
}

/** The same op case on cuda and cpu tensors; tolerance: the case's own, widened for cuDNN's other summation order. */
export function compareDevices(t: ExecutionContext, c: OpCase, o: Ops, seed = 3): void {
  const values = makeInputs(c, seed);
  const onCpu: Record<string, Tensor> = {};
  const onCuda: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    onCpu[name] = Tensor.fromArray(values[name]!, spec.shape);
    onCuda[name] = Tensor.fromArray(values[name]!, spec.shape, { device: 'cuda' });
  }
  const tol = { abs: Math.max(c.tolerance.abs, 1e-5) * 10, rel: Math.max(c.tolerance.rel, 1e-5) * 10 };
  const yCpu = c.forward(o, onCpu);
  const yCuda = c.forward(o, onCuda);
  t.is(yCuda.device, 'cuda');
  assertClose(t, yCuda.toArray(), yCpu.toArray(), tol, `${c.name}: forward cuda vs cpu`);
  const dyValues = randomArray(yCpu.size, rng(seed + 5));
  const gCpu = c.backward(o, onCpu, yCpu, Tensor.fromArray(dyValues, yCpu.shape));
  const gCuda = c.backward(o, onCuda, yCuda, Tensor.fromArray(dyValues, yCuda.shape, { device: 'cuda' }));
  for (const name of Object.keys(gCpu)) assertClose(t, gCuda[name]!.toArray(), gCpu[name]!.toArray(), tol, `${c.name}: d${name} cuda vs cpu`);
}
