// The network families and their registry. Each family (lib/models/<family>/) holds
// its networks, its own layers, its regime and settings, its inference if special,
// its measures and its pieces of the command line; this file merges them. The CLI,
// the model-file loader (load.ts) and `segvol train` find a model's family here, by
// the preset its file records, so no generic code names a family.
import { layers as genericLayers } from '../nn/layers';
import type { LayerBuilder } from '../nn/layer';
import type { ModelBase } from '../nn/model';
import { affinityFamily, affinityPresets } from './affinity';
import { consistentFamily, consistentLayers, consistentPresets } from './consistent';
import { convnetsFamily, znnPresets } from './convnets';
import type { ModelFamily } from './family';
import { crossModalityLayers, mriFamily, mriPresets } from './mri';
import { pyramidFamily, pyramidLayers, pyramidPresets } from './pyramid';
import './hooks';

export * from './pyramid';
export * from './convnets';
export * from './mri';
export * from './consistent';
export * from './affinity';
export type * from './family';

/** Every family, the default (the first) leading: its demo and synthetic data are the CLI's defaults. */
export const families: readonly ModelFamily[] = [pyramidFamily, convnetsFamily, mriFamily, consistentFamily, affinityFamily];

/** The networks of the source papers, ready to train: presets.pyramidNet({...}), presets.vd2d3d({...}), ... */
export const presets = {
  ...pyramidPresets,
  ...znnPresets,
  ...mriPresets,
  ...consistentPresets,
  ...affinityPresets,
};

/** Every layer builder: the generic ones (lib/nn) and the families' own. */
export const layers = {
  ...genericLayers,
  ...pyramidLayers,
  ...crossModalityLayers,
  ...consistentLayers,
};

/** The family a preset belongs to, or undefined. */
export function familyOfPreset(preset: string): ModelFamily | undefined {
  return families.find((f) => Object.prototype.hasOwnProperty.call(f.presets, preset));
}

/** The family of a model built from a preset (as its file records it), or undefined for layer lists, graphs and custom classes. */
export function familyOf(model: ModelBase): ModelFamily | undefined {
  const architecture = model.architecture();
  return architecture.kind === 'preset' ? familyOfPreset(architecture.preset) : undefined;
}

/** Every preset builder by name (model files record the name). */
export function presetBuilders(): Map<string, (options: never) => ModelBase> {
  return new Map(families.flatMap((f) => Object.entries(f.presets)));
}

/** Every layer builder by type (model files of layer lists and graphs record the type). */
export function layerBuilders(): Map<string, (options: never) => LayerBuilder> {
  return new Map([...Object.entries(genericLayers), ...families.flatMap((f) => Object.entries(f.layers ?? {}))] as Array<[string, (options: never) => LayerBuilder]>);
}
