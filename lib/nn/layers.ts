// The generic layer builders, one object (layers.conv(...), layers.lstm(...), ...). The
// network families add their own (lib/models/<family>); the registry merges all of them
// into the public `layers`.
import { activationLayers } from './activation';
import { convLayers } from './conv';
import { convLstmLayers } from './conv_lstm';
import { normalizationLayers } from './normalization';
import { poolingLayers } from './pooling';
import { recurrentLayers } from './recurrent';

export const layers = {
  ...convLayers,
  ...poolingLayers,
  ...normalizationLayers,
  ...activationLayers,
  ...recurrentLayers,
  ...convLstmLayers,
};
