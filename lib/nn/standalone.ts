// A layer used on its own, as a torch.nn module is: built from its builder with a
// seed and a device, and loaded from a state_dict by the module's own names
// ("weight_ih_l0", not "lstm.weight_ih_l0").
import { describe, SegvolError } from '../core/errors';
import { seededRandom } from '../core/random';
import { Tensor, type Device } from '../core/tensor';
import { modelServices, type StateArray } from './model';
import { checkStateFits, replaceLayerTensors, tensorFromState } from './state';
import type { Layer, LayerBuilder } from './layer';

export interface CreateLayerOptions {
  /** Input channels (features); default: what the builder's options fix (a recurrent layer's inputSize). */
  inChannels?: number;
  /** Fixes the initial weights (default 0). */
  seed?: number;
  /** Where the parameters live (default 'cpu'). */
  device?: Device;
}

/** Builds one layer outside a model: `createLayer(layers.lstm({ inputSize: 8, hiddenSize: 16 }))`. */
export function createLayer<L extends Layer>(builder: LayerBuilder<L>, options: CreateLayerOptions = {}): L {
  if (builder === null || typeof builder !== 'object' || typeof builder.build !== 'function') {
    throw new SegvolError('ERR_ARGUMENT', `createLayer: expected a layer builder (layers.lstm({...}), ...), received ${describe(builder)}`);
  }
  const inChannels = options.inChannels ?? builder.inChannels;
  if (inChannels === undefined || !Number.isInteger(inChannels) || inChannels < 1) {
    throw new SegvolError('ERR_ARGUMENT', `createLayer: ${builder.type} needs inChannels (its input channels) as a positive integer, ` +
      `received ${describe(inChannels)}`);
  }
  const layer = builder.build({ inChannels, random: seededRandom(options.seed ?? 0) });
  if (options.device && options.device !== 'cpu') {
    for (const map of [layer.parameters, layer.buffers ?? new Map<string, Tensor>()]) {
      for (const [name, t] of [...map]) {
        const moved = t.to(options.device);
        moved.requiresGrad = t.requiresGrad;
        map.set(name, moved);
        t.dispose();
      }
    }
  }
  return layer;
}

/**
 * Replaces a layer's parameters and buffers with the values of the same names (a
 * state_dict of the matching torch module, from a safetensors file or a map):
 * strict, like load_state_dict; on any mismatch nothing changes.
 */
export function loadLayerState(layer: Layer, source: string | ReadonlyMap<string, StateArray>, options: LoadLayerStateOptions = {}): void {
  const where = typeof source === 'string' ? `loadLayerState ${source}` : 'loadLayerState';
  const all = typeof source === 'string' ? modelServices().readTensors(source) : source;
  const prefix = options.prefix ?? '';
  if (typeof prefix !== 'string') throw new SegvolError('ERR_ARGUMENT', `${where}: expected prefix as a string ('lstm.'), received ${describe(prefix)}`);
  // A sub-module's entries of a larger state_dict: 'encoder.lstm.weight_ih_l0' with prefix 'encoder.lstm.'.
  const loaded = prefix ? new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v] as const)) : all;
  const own = new Map<string, Tensor>([...layer.parameters, ...(layer.buffers ?? [])]);
  checkStateFits(own, loaded, where, {
    headline: `the state does not fit this ${layer.type} layer`, own: 'layer', given: 'given', missing: 'missing', unexpected: 'not in the layer',
    hint: `build the layer with the options the state was saved with${prefix ? ` (the entries read: those under '${prefix}')` : ''}`,
  });
  replaceLayerTensors([['', layer]], (name, old) => tensorFromState(loaded.get(name)!, old));
}

export interface LoadLayerStateOptions {
  /** Read the entries under this prefix of a larger state_dict ('encoder.lstm.'), without it. */
  prefix?: string;
}
