// Shared test utilities: a seeded RNG, tensor factories and a closeness check
// that reports the worst element.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backends, GradientTape, Tensor, type ModelBase, type ModelInput, type RunOptions } from '../lib';

export interface Tolerance {
  abs: number;
  rel: number;
}

/** mulberry32: small, fast, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fixture scripts' integer hash: u in [0, 1), exact in Python and here. */
export function hashed(count: number, k: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; ++i) out[i] = Number((BigInt(i + 7919 * k) * 2654435761n) % 4294967296n) / 4294967296;
  return out;
}

export type Init = 'uniform' | 'distinct' | 'positive' | 'awayFromZero';

export function randomArray(size: number, random: () => number, init: Init = 'uniform'): Float32Array {
  const out = new Float32Array(size);
  if (init === 'distinct') {
    // A shuffled ramp: no ties, gaps of 2/size, so max windows have one clear winner.
    for (let i = 0; i < size; ++i) out[i] = (i / size) * 2 - 1;
    for (let i = size - 1; i > 0; --i) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
  for (let i = 0; i < size; ++i) {
    const u = random() * 2 - 1;
    out[i] = init === 'positive' ? 0.5 + Math.abs(u) : init === 'awayFromZero' ? Math.sign(u || 1) * (0.1 + Math.abs(u)) : u;
  }
  return out;
}

export function randomTensor(shape: readonly number[], random: () => number, init: Init = 'uniform'): Tensor {
  return Tensor.fromArray(randomArray(shape.reduce((a, b) => a * b, 1), random, init), shape);
}

/** Largest |a - b| / (abs + rel * |b|) over all elements; <= 1 means within tolerance. */
export function worstViolation(actual: Float32Array, expected: Float32Array, tol: Tolerance) {
  let worst = 0;
  let index = -1;
  for (let i = 0; i < expected.length; ++i) {
    const a = actual[i]!;
    const b = expected[i]!;
    const ratio = Number.isNaN(a) !== Number.isNaN(b) ? Infinity
      : Number.isNaN(a) ? 0 : Math.abs(a - b) / (tol.abs + tol.rel * Math.abs(b));
    if (ratio > worst || (index < 0 && ratio === Infinity)) {
      worst = ratio;
      index = i;
    }
  }
  return { worst, index };
}

export function assertClose(t: ExecutionContext, actual: Float32Array | Tensor, expected: Float32Array | Tensor,
  tol: Tolerance, label: string): void {
  const a = actual instanceof Tensor ? actual.toArray() : actual;
  const b = expected instanceof Tensor ? expected.toArray() : expected;
  if (a.length !== b.length) {
    t.fail(`${label}: ${a.length} values, expected ${b.length}`);
    return;
  }
  const { worst, index } = worstViolation(a, b, tol);
  t.true(worst <= 1, `${label}: element ${index} is ${a[index]}, expected ${b[index]} ` +
    `(tolerance abs ${tol.abs} + rel ${tol.rel}; ${worst.toFixed(2)}x over)`);
}

/**
 * One forward pass on a GradientTape and its backward pass for the output gradient dy:
 * the output, every input's gradient (by input name) and every parameter's (by name).
 */
export async function modelGradients(model: ModelBase, x: ModelInput, dy: Float32Array | Tensor, options: RunOptions = { training: true }) {
  const tape = new GradientTape();
  const inputs = x instanceof Tensor ? new Map([[Object.keys(model.inputs)[0]!, x]]) : new Map(Object.entries(x));
  tape.watch(...inputs.values());
  const y = await tape.record(() => model.forward(x, options));
  const seed = dy instanceof Tensor ? dy : Tensor.fromArray(dy, y.shape);
  const grads = await tape.backward(y, seed);
  tape.dispose();
  const dxs = new Map([...inputs].map(([name, t]) => [name, grads.get(t)!]));
  return { y, dx: dxs.values().next().value!, dxs, grads: model.gradientsByName(grads) };
}

const cudaBackend = backends().find((b) => b.name === 'cuda')!;

/**
 * A test that needs a usable cuda backend. Without one it is reported as skipped, with
 * the reason in its title; under SEGVOL_REQUIRE_CUDA=1 (npm run test:gpu) it fails instead.
 */
export function cudaTest(title: string, fn: (t: ExecutionContext) => void | Promise<void>): void {
  if (cudaBackend.available) {
    test(title, fn);
  } else if (process.env.SEGVOL_REQUIRE_CUDA === '1') {
    test(title, (t) => t.fail(`SEGVOL_REQUIRE_CUDA=1 but cuda is unavailable: ${cudaBackend.reason}`));
  } else {
    test.skip(`${title} (skipped: no usable cuda backend: ${cudaBackend.reason})`, fn);
  }
}

/** PyTorch's bfloat16 and NumPy's float16 roundings of special and random values (test/fixtures/make_precision_fixtures.py). */
export function roundingFixture(): { values: Float32Array; bf16: Float32Array; fp16: Float32Array } {
  const raw = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'precision', 'rounding.json'), 'utf8')) as Record<string, Array<number | string>>;
  const floats = (a: Array<number | string>) => Float32Array.from(a, (v) => (typeof v === 'string' ? Number(v) : v));
  return { values: floats(raw.values!), bf16: floats(raw.bf16!), fp16: floats(raw.fp16!) };
}
