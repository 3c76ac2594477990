// The MALA pipeline's network (Funke et al., TPAMI 2018): a 3D U-Net predicting the
// affinities of each voxel to its neighbours along z, y and x, trained on the
// affinities of instance labels; the paper's settings, and its command-line pieces.
import type { ModelFamily } from '../family';
import { affinityPredict, affinitySynth, affinityTraining } from './cli';
import { affinityPresets } from './network';

export { AffinityUNet, affinityPresets, type AffinityUNetOptions } from './network';
export { affinitySettings, type AffinityTrainingSettings } from './settings';

export const affinityFamily: ModelFamily = {
  name: 'affinity',
  title: 'the MALA U-Net predicting affinities (Funke et al. 2018)',
  presets: affinityPresets,
  synth: affinitySynth,
  training: affinityTraining,
  predict: affinityPredict,
};
