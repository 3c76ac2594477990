// For tests and for users checking a backend: the reference implementation of
// every op (plain loops, double accumulation) and oneDNN primitive cache counters.
import { createOps, type Ops } from './ops';
import { native } from './core/native';

/** The oracle: same signatures as `ops`, CPU tensors only, slow. */
export const reference: Ops = createOps('reference');

/** Counters of the CPU backend's oneDNN primitive cache (a repeated shape is a hit). */
export function primitiveCacheStats(): { hits: number; misses: number; entries: number } {
  return native.primitiveCacheStats();
}
