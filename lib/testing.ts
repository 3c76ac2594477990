// For tests and for users checking a backend: the reference implementation of
// every op (plain loops, double accumulation), the explicit backward function of
// every op on both implementations, and oneDNN primitive cache counters.
import { createOpSet, type BackwardOps, type Ops } from './ops';
import { native } from './core/native';

/** Every op of an implementation with its explicit backward functions (convBackward, ...). */
export type OpsWithBackward = Ops & BackwardOps;

function withBackward(impl: 'optimized' | 'reference'): OpsWithBackward {
  const set = createOpSet(impl);
  return { ...set.ops, ...set.backward };
}

/** The oracle: same signatures as `ops`, CPU tensors only, slow; with its backward functions. */
export const reference: OpsWithBackward = withBackward('reference');

/** The optimized ops (segvol's `ops`) with their explicit backward functions. */
export const optimized: OpsWithBackward = withBackward('optimized');

/** Counters of the CPU backend's oneDNN primitive cache (a repeated shape is a hit). */
export function primitiveCacheStats(): { hits: number; misses: number; entries: number } {
  return native.primitiveCacheStats();
}
