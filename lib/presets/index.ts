// Networks of the source papers, ready to train.
import { pyramidPresets } from './pyramid';
import { znnPresets } from './znn';

export type { PyramidNetOptions } from './pyramid';
export type { ZnnOptions, Vd2dOptions, Vd2d3dOptions, ZnnPreset, ZnnTrainingSettings } from './znn';
export { znnTrainingSettings } from './znn';

export const presets = {
  ...pyramidPresets,
  ...znnPresets,
};
