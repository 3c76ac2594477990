// Networks of the source papers, ready to train.
import { pyramidPresets } from './pyramid';

export type { PyramidNetOptions } from './pyramid';

export const presets = {
  ...pyramidPresets,
};
