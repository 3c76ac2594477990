// The Trainer's precision option: checked before any step (refused where this machine
// cannot compute it), and set for the length of a fit.
import { convMath, setConvMath } from '../core/backends';
import { SegvolError } from '../core/errors';
import { oneOf } from '../core/validate';
import { precisions, type Precision } from './options';

/** The precision option, refused where this machine cannot compute it (before any step). */
export function checkPrecision(value: unknown, device: string): Precision {
  const precision = oneOf(value, precisions, 'Trainer: precision');
  if (precision !== 'bf16') return precision;
  if (device !== 'cpu') {
    throw new SegvolError('ERR_DEVICE', `Trainer: precision 'bf16' is computed by the cpu backend in this version, and the model is on ${device}; ` +
      "use precision 'tf32' on cuda, or train on the cpu");
  }
  const before = convMath();
  try {
    setConvMath('bf16');
  } catch (error) {
    throw new SegvolError('ERR_DEVICE', `Trainer: precision 'bf16' needs AVX512-BF16: ${(error as Error).message.replace(/^(segvol: )?setConvMath\('bf16'\): /, '')}`);
  } finally {
    setConvMath(before);
  }
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
