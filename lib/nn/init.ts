// Weight initialisers, chosen per layer. Fans follow PyTorch: for a weight of
// shape (O, C, k...), fanIn = C * prod(k) and fanOut = O * prod(k).
import { describe, SegvolError } from '../core/errors';

export type Distribution = 'normal' | 'uniform';

/**
 * 'uniform' U(-0.1, 0.1) (PyraMiD-LSTM); 'normal' N(0, 0.01^2);
 * 'msra' (alias 'he'): He et al., N(0, 2 / fanIn) for ReLU nets (ZNN's VD2D);
 * 'xavier' (alias 'glorot'): Glorot & Bengio, U(+-sqrt(6 / (fanIn + fanOut)));
 * 'orthogonal': Saxe et al., the rows (or columns) of the flattened weight orthonormal (001's ConvLSTM);
 * 'zeros', 'ones'; or an object to set the scale, the distribution or the gain.
 */
export type Initializer =
  | 'uniform' | 'normal' | 'msra' | 'he' | 'xavier' | 'glorot' | 'orthogonal' | 'zeros' | 'ones'
  | { kind: 'uniform'; scale?: number }
  | { kind: 'normal'; std?: number; mean?: number }
  | { kind: 'msra' | 'he'; distribution?: Distribution; gain?: number }
  | { kind: 'xavier' | 'glorot'; distribution?: Distribution; gain?: number }
  | { kind: 'orthogonal'; gain?: number }
  | { kind: 'constant'; value: number };

const kinds = ['uniform', 'normal', 'msra', 'he', 'xavier', 'glorot', 'orthogonal', 'zeros', 'ones', 'constant'];

/** fanIn and fanOut of a weight shape (PyTorch's _calculate_fan_in_and_fan_out). */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) return { fanIn: shape[0] ?? 1, fanOut: shape[0] ?? 1 };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** A standard normal sample from two uniforms (Box-Muller). */
function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Checks an initialiser early (when a layer is declared), so a typo fails before any training. */
export function checkInitializer(init: Initializer, where: string): void {
  const kind = typeof init === 'string' ? init : init !== null && typeof init === 'object' ? init.kind : undefined;
  if (typeof kind !== 'string' || !kinds.includes(kind)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected an initialiser (${kinds.join(', ')}), received ${describe(kind ?? init)}`);
  }
}

/** Values for a tensor of this shape. */
export function initialize(init: Initializer, shape: readonly number[], random: () => number): Float32Array {
  checkInitializer(init, 'initialize');
  const kind = typeof init === 'string' ? init : init.kind;
  // The object form's fields, all optional here; absent ones take the defaults.
  const spec = (typeof init === 'string' ? {} : init) as { scale?: number; std?: number; mean?: number; distribution?: Distribution; gain?: number; value?: number };
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  const { fanIn, fanOut } = fans(shape);
  const fill = (distribution: Distribution, std: number) => {
    // A uniform of standard deviation std spans +-std * sqrt(3).
    if (distribution === 'uniform') for (let i = 0; i < size; ++i) out[i] = (random() * 2 - 1) * std * Math.sqrt(3);
    else for (let i = 0; i < size; ++i) out[i] = std * gaussian(random);
  };
  switch (kind) {
    case 'uniform': {
      const scale = spec.scale ?? 0.1;
      for (let i = 0; i < size; ++i) out[i] = (random() * 2 - 1) * scale;
      break;
    }
    case 'normal': {
      const std = spec.std ?? 0.01, mean = spec.mean ?? 0;
      for (let i = 0; i < size; ++i) out[i] = mean + std * gaussian(random);
      break;
    }
    case 'msra':
    case 'he':
      fill(spec.distribution ?? 'normal', (spec.gain ?? Math.SQRT2) / Math.sqrt(fanIn));
      break;
    case 'xavier':
    case 'glorot':
      fill(spec.distribution ?? 'uniform', (spec.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)));
      break;
    case 'orthogonal':
      out.set(orthogonal(shape, spec.gain ?? 1, random));
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'constant':
      out.fill(spec.value ?? 0);
      break;
    default:  // zeros
      break;
  }
  return out;
}

/**
 * A (semi-)orthogonal matrix of rows shape[0] by cols prod(shape[1:]), as PyTorch's
 * orthogonal_: the Q of a Gaussian matrix's QR decomposition, signs fixed by R's
 * diagonal, transposed when there are fewer rows than columns; times gain.
 */
function orthogonal(shape: readonly number[], gain: number, random: () => number): Float32Array {
  const rows = shape[0] ?? 1;
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  const m = Math.max(rows, cols), n = Math.min(rows, cols);
  // n columns of length m, modified Gram-Schmidt in float64. Its loss of orthogonality grows with
  // the matrix's condition number; a Gaussian matrix at least twice as tall as wide has one below 6,
  // so one pass is orthogonal to ~1e-15 there (and halves the time of wide layers, e.g. 1024 x 9216),
  // while squarer matrices, whose condition number can be large, get a second pass.
  const passes = m >= 2 * n ? 1 : 2;
  const q = Array.from({ length: n }, () => Float64Array.from({ length: m }, () => gaussian(random)));
  for (let j = 0; j < n; ++j) {
    const v = q[j]!;
    for (let pass = 0; pass < passes; ++pass) {
      for (let i = 0; i < j; ++i) {
        const u = q[i]!;
        let dot = 0;
        for (let k = 0; k < m; ++k) dot += u[k]! * v[k]!;
        for (let k = 0; k < m; ++k) v[k]! -= dot * u[k]!;
      }
    }
    let norm = 0;
    for (let k = 0; k < m; ++k) norm += v[k]! * v[k]!;
    norm = Math.sqrt(norm) || 1;
    for (let k = 0; k < m; ++k) v[k]! /= norm;
  }
  const out = new Float32Array(rows * cols);
  // q holds the columns of an m x n matrix; the weight is that matrix (rows >= cols) or its transpose.
  for (let r = 0; r < rows; ++r)
    for (let c = 0; c < cols; ++c) out[r * cols + c] = gain * (rows >= cols ? q[c]![r]! : q[r]![c]!);
  return out;
}
