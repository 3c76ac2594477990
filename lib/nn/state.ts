// Loading a state_dict strictly, as PyTorch's load_state_dict does: every name and
// shape must match, or nothing changes. Shared by models and standalone layers.
import { SegvolError } from '../core/errors';
import { keep, Tensor } from '../core/tensor';
import type { Layer } from './layer';
import type { StateArray } from './model_types';

/** How a refusal names the two sides: a model and its file, or a layer and the given state. */
export interface StateLabels {
  /** The headline: "the weights do not fit this model". */
  headline: string;
  /** The side being loaded, then the source, in shape lines ("model (8, 3) vs file (4, 3)"). */
  own: string;
  given: string;
  /** Names absent from the source, and names it has in excess. */
  missing: string;
  unexpected: string;
  hint: string;
}

/**
 * Refuses a state that does not fit: the names missing from it, those it has in
 * excess, and the shapes that differ (at most 8 of each named), and values whose
 * count does not match their shape.
 */
export function checkStateFits(own: ReadonlyMap<string, Tensor>, loaded: ReadonlyMap<string, StateArray>, where: string, labels: StateLabels): void {
  const list = (names: string[], sep = ', ') => `${names.slice(0, 8).join(sep)}${names.length > 8 ? `${sep}...` : ''}`;
  const missing = [...own.keys()].filter((k) => !loaded.has(k));
  const unexpected = [...loaded.keys()].filter((k) => !own.has(k));
  const mismatched = [...own].filter(([k, t]) => loaded.has(k) && loaded.get(k)!.shape.join() !== t.shape.join())
    .map(([k, t]) => `${k}: ${labels.own} (${t.shape.join(', ')}) vs ${labels.given} (${loaded.get(k)!.shape.join(', ')})`);
  if (missing.length || unexpected.length || mismatched.length) {
    const parts = [
      missing.length ? `${labels.missing}: ${list(missing)}` : '',
      unexpected.length ? `${labels.unexpected}: ${list(unexpected)}` : '',
      mismatched.length ? `shape differs: ${list(mismatched, '; ')}` : '',
    ].filter(Boolean);
    throw new SegvolError('ERR_SHAPE', `${where}: ${labels.headline} (${parts.join('; ')}); ${labels.hint}`);
  }
  for (const [name, a] of loaded) {
    if (own.has(name) && a.data.length !== a.shape.reduce((x, y) => x * y, 1)) {
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
        keep(next);
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
