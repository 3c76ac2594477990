// Loading a state_dict strictly, as PyTorch's load_state_dict does: every name and
// shape must match, or nothing changes. Shared by models and standalone layers.
import { SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import type { Layer } from './layer';
import type { StateArray } from './model_types';

/**
 * Refuses a state that does not fit: the names missing from it, those it has in
 * excess, and the shapes that differ (at most 8 of each named). `subject` is what
 * is loaded ('model', 'layer'), `source` where the state comes from ('file', 'given').
 */
export function checkStateFits(own: ReadonlyMap<string, Tensor>, loaded: ReadonlyMap<string, StateArray>, where: string,
  subject: string, source: string, hint: string): void {
  const list = (names: string[], sep = ', ') => `${names.slice(0, 8).join(sep)}${names.length > 8 ? `${sep}...` : ''}`;
  const missing = [...own.keys()].filter((k) => !loaded.has(k));
  const unexpected = [...loaded.keys()].filter((k) => !own.has(k));
  const mismatched = [...own].filter(([k, t]) => loaded.has(k) && loaded.get(k)!.shape.join() !== t.shape.join())
    .map(([k, t]) => `${k}: ${subject} (${t.shape.join(', ')}) vs ${source} (${loaded.get(k)!.shape.join(', ')})`);
  if (missing.length || unexpected.length || mismatched.length) {
    const parts = [
      missing.length ? `missing in the ${source}: ${list(missing)}` : '',
      unexpected.length ? `not in the ${subject}: ${list(unexpected)}` : '',
      mismatched.length ? `shape differs: ${list(mismatched, '; ')}` : '',
    ].filter(Boolean);
    throw new SegvolError('ERR_SHAPE', `${where}: the ${source === 'file' ? 'weights do' : 'state does'} not fit this ${subject} (${parts.join('; ')}); ${hint}`);
  }
  for (const [name, a] of loaded) {
    if (a.data.length !== a.shape.reduce((x, y) => x * y, 1)) {
      throw new SegvolError('ERR_SHAPE', `${where}: ${name} has ${a.data.length} values for shape (${a.shape.join(', ')})`);
    }
  }
}

/**
 * Swaps each parameter and buffer of the layers (named by their path prefix) for
 * replace(name, old) where that gives one; parameters keep requiresGrad.
 */
export function replaceLayerTensors(layers: ReadonlyArray<readonly [string, Layer]>, replace: (name: string, old: Tensor) => Tensor | undefined): void {
  for (const [path, layer] of layers) {
    for (const map of [layer.parameters, layer.buffers ?? new Map<string, Tensor>()]) {
      for (const [name, old] of [...map]) {
        const next = replace(path ? `${path}.${name}` : name, old);
        if (!next) continue;
        next.requiresGrad = old.requiresGrad;
        map.set(name, next);
        old.dispose();
      }
    }
  }
}

/** A state's values as tensors on the device of the ones they replace. */
export function tensorFromState(a: StateArray, like: Tensor): Tensor {
  return Tensor.fromArray(a.data, a.shape, { device: like.device });
}
