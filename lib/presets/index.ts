// Networks of the source papers, ready to train.
import { pyramidPresets } from './pyramid';
import { znnPresets } from './znn';
import { mriPresets } from './mri';
import { consistentPresets } from './consistent';

export type { PyramidNetOptions } from './pyramid';
export type { ZnnOptions, Vd2dOptions, Vd2d3dOptions, ZnnPreset, ZnnTrainingSettings } from './znn';
export { znnTrainingSettings } from './znn';
export type { CrossModalityConvLstmOptions } from './mri';
export { CrossModalityConvLstm } from './mri';
export { ConsistentConvLstmNet, type ConsistentConvLstmNetOptions } from './consistent';
export { Resnet50Encoder, resnet50FeatureChannels, torchvisionResnet50State, type Resnet50EncoderOptions } from './resnet';

export const presets = {
  ...pyramidPresets,
  ...znnPresets,
  ...mriPresets,
  ...consistentPresets,
};
