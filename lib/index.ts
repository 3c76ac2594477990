// segvol's public API.
export { backends, convMath, setConvMath, synchronize, type BackendInfo, type ConvMath } from './backends';
export { SegvolError, type ErrorCode } from './errors';
export { Tensor, type Device, type TensorOptions } from './tensor';
export {
  ops,
  inversePermutation,
  type Ops,
  type PerAxis,
  type ConvOptions,
  type ConvTransposeOptions,
  type ConvGradients,
  type GradientRequest,
  type PoolOptions,
  type AvgPoolOptions,
  type MaxFilterOptions,
  type UpsampleOptions,
  type UpsampleMode,
  type BatchNormOptions,
  type BatchNormResult,
  type BatchNormGradients,
  type Activation,
} from './ops';
export {
  SavedState,
  type ClstmWeights,
  type ClstmGradients,
  type Direction,
  type ClstmScanOptions,
  type ClstmScanResult,
  type ClstmScanGradients,
  type PyramidLstmOptions as PyramidLstmOpOptions,
  type PyramidLstmResult,
  type PyramidLstmGradients,
} from './recurrent';
export {
  readSafetensors,
  writeSafetensors,
  parseSafetensors,
  serializeSafetensors,
  type NamedArray,
  type SafetensorsFile,
} from './safetensors';
export { layers, type Layer, type LayerBuilder, type Tape, type ForwardMode, type PyramidLstmOptions, type PixelwiseOptions } from './layers';
export { ModelBase, Sequential, sequential, ModelTape, type SequentialOptions } from './model';
export { Graph, graph, type GraphNode, type GraphOptions, type JoinKind } from './graph';
export { presets, type PyramidNetOptions } from './presets';
export { profile, formatProfile, type ProfileRecord } from './profile';
export { computeLoss, classCounts, classWeightsFromCounts, type LossKind, type ClassWeighting, type LossOptions } from './losses';
export { Optimizer, type OptimizerConfig, type OptimizerKind } from './optimizers';
export { learningRate, type Schedule } from './schedules';
export { Random } from './random';
export { VolumeSampler, MultiSampler, type DataSource, type TrainingSample, type VolumeSamplerOptions, type Size3 } from './data';
export { Trainer, type TrainerOptions, type FitOptions, type FitResult, type Progress, type Stage, type LossConfig } from './trainer';
export { metrics, percentile, type RandScores, type ClassOverlap, type Labels, type Shape3 } from './metrics';
export { predictVolume, windowStarts, gaussianWeight, type StitchOptions } from './inference';
export { readVolume, writeVolume, describeVolume, stackModalities, type Volume, type RawOptions } from './volume_io';
export { parseNifti, serializeNifti, type NiftiVolume } from './nifti';
export { readNpy, writeNpy, parseNpy } from './npy';
export { normalizeSlices, gaussianBlur2d, gaussianKernel, clahe, mrPreprocess } from './preprocess';
