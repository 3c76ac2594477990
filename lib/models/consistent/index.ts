// The consistent ConvLSTM for 3D neuron segmentation (Gonda, Wei and Pfister):
// a ResNet-50 encoder, CConvLSTMs with local and non-local consistency, soft IoU
// with Hungarian matching, and objects propagated through z.
import type { ModelFamily } from '../family';
import { consistentPredict } from './cli';
import { consistentTraining } from './train_config';
import { consistentLayers } from './layer';
import { consistentPresets } from './network';
import { Resnet50Encoder, type Resnet50EncoderOptions } from './resnet';

export { ConsistentConvLstmNet, consistentPresets, disposeSpatial, detachSpatial, type ConsistentConvLstmNetOptions, type SpatialStates } from './network';
export {
  ConsistentConvLstmLayer, consistentLayers, consistencyVariants, type ConsistencyVariant, type ConsistentConvLstmOptions, type ConsistentRunOptions,
  type ConsistentRunResult, type DirectionStates,
} from './layer';
export { Resnet50Encoder, resnet50FeatureChannels, resnet50ReceptiveField, torchvisionResnet50State, type Resnet50EncoderOptions } from './resnet';
export { linearSumAssignment, type Assignment } from './assignment';
export { matchedSoftIoU, type MatchedSoftIoU } from './matching';
export { consistentPaperSettings } from './train_config';
export { trainConsistent, type ConsistentTrainingOptions, type ConsistentTrainingResult, type ConsistentEpoch, type ConsistentSplit } from './training';
export {
  estimateConsistentMemory, checkConsistentMemory, previousFrameMasks, masksOf, objectsOf, watershedFrame, predictObjectMasks,
  type ConsistentMemory, type ConsistentModel,
} from './inference';
export {
  segmentConsistent, planPropagation, choosePatch, propagatePatch, propagate, objectsPerTile, memoryPatchReader,
  type ConsistentSegmentOptions, type PropagationPlan, type PropagationGeometry, type PatchOptions, type PatchReader, type LabelStore,
} from './propagation';
export { segmentConsistentZarr, type ConsistentZarrOptions, type ConsistentZarrResult } from './propagation_zarr';

export const consistentFamily: ModelFamily = {
  name: 'consistent',
  title: 'consistent ConvLSTM for 3D neuron segmentation (Gonda, Wei and Pfister)',
  presets: { ...consistentPresets, resnet50Encoder: (options: Resnet50EncoderOptions = {}) => new Resnet50Encoder(options) },
  layers: consistentLayers,
  predict: consistentPredict,
  training: consistentTraining,
};
