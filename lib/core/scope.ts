// Deterministic disposal: `tidy(fn)` runs fn and disposes every tensor created while
// it ran (in its async context) except what it returns and what it keeps, so a
// hand-written loop's intermediates are freed at once instead of when the garbage
// collector runs. The training step runs in one.
import { AsyncLocalStorage } from 'node:async_hooks';

/** What a scope tracks: tensors by identity, disposed at its end. */
export interface TrackedTensor {
  readonly requiresGrad: boolean;
  dispose(): void;
}

interface Scope {
  created: Set<TrackedTensor>;
  kept: Set<TrackedTensor>;
}

const scopes = new AsyncLocalStorage<Scope>();

/** @internal Called by the Tensor constructor: the tensor belongs to the innermost scope, if any. */
export function trackTensor(t: TrackedTensor): void {
  scopes.getStore()?.created.add(t);
}

/** Keeps tensors created inside the current tidy scope alive past its end (an optimizer's state, a cache). */
export function keep<T extends TrackedTensor>(t: T): T {
  scopes.getStore()?.kept.add(t);
  return t;
}

/** Every tensor a result holds: itself, or inside arrays, Maps and plain objects (to a small depth). */
function reachable(value: unknown, isTensor: (v: unknown) => v is TrackedTensor, out: Set<TrackedTensor>, depth = 0): void {
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (depth > 4 || value === null || typeof value !== 'object') return;
  const children = value instanceof Map ? [...value.values()] : Array.isArray(value) ? value : Object.values(value as object);
  for (const child of children) reachable(child, isTensor, out, depth + 1);
}

/**
 * Runs fn and disposes the tensors it created that its result does not hold, that were not
 * kept, and that are not parameters (requiresGrad). Nested scopes hand what they return to
 * the scope around them.
 */
export async function tidyWith<T>(fn: () => T | Promise<T>, isTensor: (v: unknown) => v is TrackedTensor): Promise<T> {
  const outer = scopes.getStore();
  const scope: Scope = { created: new Set(), kept: new Set() };
  let result: T;
  try {
    result = await scopes.run(scope, async () => fn());
  } catch (error) {
    release(scope, new Set(), outer);
    throw error;
  }
  const returned = new Set<TrackedTensor>();
  reachable(result, isTensor, returned);
  release(scope, returned, outer);
  return result;
}

function release(scope: Scope, returned: ReadonlySet<TrackedTensor>, outer: Scope | undefined): void {
  for (const t of scope.created) {
    if (returned.has(t) || scope.kept.has(t) || t.requiresGrad) {
      // What survives belongs to the enclosing scope now (kept ones stay kept there).
      outer?.created.add(t);
      if (scope.kept.has(t)) outer?.kept.add(t);
      continue;
    }
    t.dispose();
  }
}
