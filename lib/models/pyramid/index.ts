// PyraMiD-LSTM (Stollenga et al. 2015): six directional C-LSTMs over a volume,
// summed; the paper's network, training (RMSprop with momentum, sub-volumes in
// bootstrap stages, its decaying rate) and stitched inference.
import type { ModelFamily } from '../family';
import { pyramidDemo, pyramidProfile, pyramidSynth } from './cli';
import { pyramidLayers } from './layer';
import { pyramidPresets } from './network';

export { pyramidLayers, scanGroupSizes, defaultScanGroupLimit, type PyramidLstmOptions } from './layer';
export { pyramidPresets, type PyramidNetOptions } from './network';
export { runDemo, type DemoOptions, type DemoResult } from './demo';

export const pyramidFamily: ModelFamily = {
  name: 'pyramid',
  title: 'PyraMiD-LSTM (Stollenga et al. 2015)',
  presets: pyramidPresets,
  layers: pyramidLayers,
  demo: pyramidDemo,
  synth: pyramidSynth,
  profile: pyramidProfile,
  training: { modelKeys: ['inChannels', 'classes', 'hidden', 'fc', 'kernel', 'seed'] },
};
