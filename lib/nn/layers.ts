// The layer builders, one object (layers.conv(...), layers.pyramidLstm(...), ...).
import { activationLayers } from './activation';
import { convLayers } from './conv';
import { fusionLayers } from './fusion';
import { consistentLayers } from './consistent';
import { normalizationLayers } from './normalization';
import { poolingLayers } from './pooling';
import { pyramidLayers } from './pyramid';
import { recurrentLayers } from './recurrent';

export const layers = {
  ...pyramidLayers,
  ...convLayers,
  ...poolingLayers,
  ...normalizationLayers,
  ...activationLayers,
  ...recurrentLayers,
  ...fusionLayers,
  ...consistentLayers,
};
