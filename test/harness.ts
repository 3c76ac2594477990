// A table-driven cross-implementation harness: each OpCase runs its forward and
// backward through the optimized ops and the reference ops and compares them,
// and checks the analytic gradients against central finite differences. A later
// backend (CUDA) runs the same cases against the CPU.
import type { ExecutionContext } from 'ava';
import { GradientTape, Tensor, type Device } from '../lib';
import type { OpsWithBackward as Ops } from '../lib/testing';
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

function toTensors(c: OpCase, values: Record<string, Float32Array>, device: Device = 'cpu'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) out[name] = Tensor.fromArray(values[name]!, spec.shape, { device });
  return out;
}

/**
 * The case's forward on a GradientTape with every input watched, and the tape's
 * gradients for dy: what a model written as a forward function gets. Also the
 * names of the ops the tape recorded.
 */
export async function tapeGradients(c: OpCase, o: Ops, values: Record<string, Float32Array>, dyValues: Float32Array | null,
  device: Device = 'cpu'): Promise<{ y: Float32Array; grads: Record<string, Float32Array>; ops: string[] }> {
  const x = toTensors(c, values, device);
  const tape = new GradientTape();
  tape.watch(...Object.values(x));
  const y = await tape.record(() => c.forward(o, x));
  const ops = tape.ops;
  const dy = Tensor.fromArray(dyValues ?? randomArray(y.size, rng(7)), y.shape, { device });
  const byTensor = await tape.backward(y, dy);
  tape.dispose();
  const grads: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(x)) {
    const g = byTensor.get(t);
    if (g) grads[name] = g.toArray();
  }
  const out = { y: y.toArray(), grads, ops };
  disposeAll(x, y, dy);
  for (const g of byTensor.values()) g.dispose();
  return out;
}

/** Central differences of L = sum(forward(x) * r) with respect to one input, through the given ops. */
function numericGradient(c: OpCase, o: Ops, values: Record<string, Float32Array>, r: Float32Array, name: string, step: number): Float32Array {
  const loss = (vals: Record<string, Float32Array>): number => {
    const xs = toTensors(c, vals);
    const out = c.forward(o, xs);
    const data = out.toArray();
    disposeAll(xs, out);
    let total = 0;
    for (let i = 0; i < data.length; ++i) total += data[i]! * r[i]!;
    return total;
  };
  const numeric = new Float32Array(values[name]!.length);
  for (let i = 0; i < numeric.length; ++i) {
    const original = values[name]![i]!;
    values[name]![i] = original + step;
    const plus = loss(values);
    values[name]![i] = original - step;
    const minus = loss(values);
    values[name]![i] = original;
    numeric[i] = (plus - minus) / (2 * step);
  }
  return numeric;
}

/**
 * The tape's gradients against the case's explicit backward (same ops) and, where the
 * case allows, against central differences of the reference forward. Returns the ops taped.
 */
export async function checkTape(t: ExecutionContext, c: OpCase, o: Ops, reference: Ops, seed = 4): Promise<string[]> {
  const values = makeInputs(c, seed);
  const r = randomArray(c.forward(o, toTensors(c, values)).size, rng(seed + 13));
  const taped = await tapeGradients(c, o, values, r);
  const x = toTensors(c, values);
  const y = c.forward(o, x);
  const dy = Tensor.fromArray(r, y.shape);
  const explicit = c.backward(o, x, y, dy);
  t.deepEqual(Object.keys(taped.grads).sort(), Object.keys(explicit).sort(), `${c.name}: the tape gives the gradients the explicit backward gives`);
  for (const [name, g] of Object.entries(explicit)) {
    if (taped.grads[name]) assertClose(t, taped.grads[name]!, g, c.tolerance, `${c.name}: tape d${name} vs explicit backward`);
    if (c.finiteDifference) {
      const numeric = numericGradient(c, reference, values, r, name, c.finiteDifference.step);
      if (taped.grads[name]) assertClose(t, taped.grads[name]!, numeric, c.finiteDifference.tolerance, `${c.name}: tape d${name} vs finite differences (reference)`);
    }
    g.dispose();
  }
  disposeAll(x, y, dy);
  return taped.ops;
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
  for (const [name, grad] of Object.entries(analytic)) {
    assertClose(t, grad, numericGradient(c, o, values, r, name, fd.step), fd.tolerance, `${c.name}: d${name} vs finite differences`);
    grad.dispose();
  }
}

/** The tape's gradients on cuda tensors against those on cpu tensors (the case's tolerance, widened as in compareDevices). */
export async function compareDevicesOnTape(t: ExecutionContext, c: OpCase, o: Ops, seed = 5): Promise<void> {
  const values = makeInputs(c, seed);
  const tol = { abs: Math.max(c.tolerance.abs, 1e-5) * 10, rel: Math.max(c.tolerance.rel, 1e-5) * 10 };
  const cpu = await tapeGradients(c, o, values, null, 'cpu');
  const gpu = await tapeGradients(c, o, values, null, 'cuda');
  t.deepEqual(gpu.ops, cpu.ops, `${c.name}: the same ops taped on both devices`);
  t.deepEqual(Object.keys(gpu.grads).sort(), Object.keys(cpu.grads).sort());
  assertClose(t, gpu.y, cpu.y, tol, `${c.name}: taped forward cuda vs cpu`);
  for (const name of Object.keys(cpu.grads)) assertClose(t, gpu.grads[name]!, cpu.grads[name]!, tol, `${c.name}: tape d${name} cuda vs cpu`);
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
