// The Trainer's precision option: checked before any step (refused where this machine
// cannot compute it), and set for the length of a fit.
import { convMath, cpuBf16Unsupported, setConvMath } from '../core/backends';
import { SegvolError } from '../core/errors';
import { oneOf } from '../core/validate';
import { precisions, type Precision } from './options';

/** The precision option, refused where this machine cannot compute it (before any step). */
export function checkPrecision(value: unknown, device: string): Precision {
  const precision = oneOf(value, precisions, 'Trainer: precision');
  if (precision === 'fp16' && device === 'cpu') {
    throw new SegvolError('ERR_DEVICE', "Trainer: precision 'fp16' is computed by the cuda backend only, and the model is on the cpu; " +
      "use precision 'bf16' (mixed precision on CPUs with AVX512-BF16) or 'fp32', or move the model to cuda");
  }
  // On cuda the first convolution checks the GPU's compute capability, before any update.
  if (precision !== 'bf16' || device !== 'cpu') return precision;
  const unsupported = cpuBf16Unsupported();
  if (unsupported) throw new SegvolError('ERR_DEVICE', `Trainer: precision 'bf16' needs AVX512-BF16: ${unsupported}`);
  return precision;
}

/** Runs fn with the convolution math set to precision (when given), and puts back the mode it found. */
export async function withPrecision<T>(precision: Precision | undefined, fn: () => Promise<T>): Promise<T> {
  if (precision === undefined) return fn();
  const before = convMath();
  setConvMath(precision);
  try {
    return await fn();
  } finally {
    setConvMath(before);
  }
}
