// The 2D-3D ConvNets of Lee et al. (2015): N4, VD2D and VD2D3D as dense
// (max-filtered) networks, the paper's training settings and recursive training
// (a first network's boundary map as a second input of the next).
import type { ModelFamily } from '../family';
import { znnPresets } from './networks';
import { convnetsSynth } from './synth';
import { convnetsTraining } from './train';

export { znnPresets, znnGraph, type ZnnPreset, type ZnnOptions, type Vd2dOptions, type Vd2d3dOptions, type ZnnSettings } from './networks';
export { znnTrainingSettings, lee2015Schedule, type ZnnTrainingSettings } from './settings';
export { transferWeights, recursiveBoundaryMap, vd2dSharedLayers, type TransferReport, type BoundaryMapOptions } from './recursive';
export type { RecursiveConfig } from './train';

export const convnetsFamily: ModelFamily = {
  name: 'convnets',
  title: '2D-3D ConvNets: N4, VD2D, VD2D3D (Lee et al. 2015)',
  presets: znnPresets,
  training: convnetsTraining,
  synth: convnetsSynth,
};
