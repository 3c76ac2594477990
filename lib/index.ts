// segvol's public API.
import { metrics as genericMetrics } from './evaluation/metrics';
import { rand2dMetrics } from './evaluation/rand2d';
import { bratsMetrics } from './models/mri';

export { availableMemory, backends, convMath, memoryStats, releaseCachedMemory, resetPeakMemory, setConvMath, synchronize, type BackendInfo, type ConvMath, type DeviceMemory } from './core/backends';
export { closeDistributedGroup, distributedStatus, launcherEnv, openDistributedGroup, type DistributedGroup } from './core/distributed';
export { SegvolError, type ErrorCode } from './core/errors';
export { Tensor, tidy, keep, type Device, type TensorOptions } from './core/tensor';
export { Random } from './core/random';
export { profile, formatProfile, type ProfileRecord } from './core/profile';

export {
  GradientTape, noGrad, isRecording, defineOp, recordOp, differentiableOps,
  type TapeOptions, type NonFiniteReport, type OpRecord, type OpDefinition, type GradientFunction,
} from './autograd/tape';

export {
  ops,
  inversePermutation,
  computeLoss,
  computeTargetLoss,
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
  type LossKind,
  type LossOptions,
  type LossNormalization,
  type LossInput,
  type TargetLossKind,
  type TargetLossOptions,
  type RnnCellKind,
  type RnnWeights,
  type RnnOptions,
  type RnnResult,
  type RnnGradients,
  type LstmCellOptions,
  type LstmCellResult,
  type LstmCellGradients,
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
} from './ops/clstm';
export { argmaxClasses, type UpdateRule, type UpdateHyperparameters } from './ops';

export type { Layer, LayerBuilder, LayerSpec, BuildContext, ForwardMode, LayerMemory, MemorySchedule } from './nn/layer';
export type { ConvLayerOptions, ConvTransposeLayerOptions, PixelwiseOptions } from './nn/conv';
export { initialize, fans, type Initializer, type Distribution } from './nn/init';
export {
  DenseRecurrentLayer, type RecurrentOptions, type RnnLayerOptions, type LstmLayerOptions, type RecurrentRunOptions, type RecurrentResult,
} from './nn/recurrent';
export { ConvLstmLayer, type ConvLstmOptions, type ConvLstmRunOptions, type ConvLstmResult, type DirectionMerge } from './nn/conv_lstm';
export { createLayer, loadLayerState, type CreateLayerOptions, type LoadLayerStateOptions } from './nn/standalone';
export {
  ModelBase, Model, type ModelInput, type ModelInputShape, type ModelOptions, type RunOptions, type OutputWindow, type LayerCall,
  type ModelInfo, type Architecture, type PredictOptions, type StateArray,
} from './nn/model';
export { Sequential, sequential, type SequentialOptions } from './nn/sequential';
export { Graph, graph, type GraphNode, type GraphOptions, type JoinKind } from './nn/graph';

// The network families (lib/models/<family>) and their registry: presets, every layer builder.
export { presets, layers, families, familyOf, type ModelFamily } from './models';
export { loadModel, type LoadModelOptions } from './models/load';
// PyraMiD-LSTM
export type { PyramidNetOptions, PyramidLstmOptions } from './models/pyramid';
// 2D-3D ConvNets
export {
  znnTrainingSettings, lee2015Schedule, transferWeights, recursiveBoundaryMap, vd2dSharedLayers,
  type ZnnOptions, type Vd2dOptions, type Vd2d3dOptions, type ZnnPreset, type ZnnTrainingSettings, type TransferReport, type BoundaryMapOptions,
} from './models/convnets';
export type { ZnnSettings } from './models/convnets';
// The cross-modality ConvLSTM for multi-modal MRI
export {
  CrossModalityConvLstm, crossModalityPhases, syntheticBrainMri, findBratsCases, loadBratsCase, bratsSampler, bratsRole, bratsModalities, bratsClasses,
  type CrossModalityConvLstmOptions, type CrossModalityOptions, type CrossModalityRegimeOptions, type Phantom, type PhantomOptions,
  type BratsCase, type BratsCaseFiles, type BratsModality, type BratsSamplerOptions, type BratsScores, type RegionScores,
} from './models/mri';
// Tseng et al.'s protocol: the U-Net baseline, case splits, inference in slice sequences, per-case summaries
export {
  Unet2d, paperLearningRates, splitCases, writeCaseSplit, readCaseSplit, splitPart, predictSequences, summarizeCases, evaluateBratsFolder,
  type Unet2dOptions, type LrReading, type CaseSplit, type SplitOptions, type SequenceInferenceOptions, type BratsSummary, type EmptyTruth,
} from './models/mri';
// The consistent ConvLSTM
export {
  ConsistentConvLstmNet, ConsistentConvLstmLayer, consistencyVariants, Resnet50Encoder, torchvisionResnet50State, linearSumAssignment, matchedSoftIoU,
  trainConsistent, segmentConsistent, estimateConsistentMemory, checkConsistentMemory, previousFrameMasks, masksOf, objectsOf, watershedFrame,
  predictObjectMasks, segmentConsistentZarr, planPropagation, choosePatch, propagatePatch, propagate, objectsPerTile, memoryPatchReader, disposeSpatial, detachSpatial,
  type ConsistentZarrOptions, type ConsistentZarrResult, type PropagationPlan, type PropagationGeometry, type PatchOptions, type PatchReader, type LabelStore, type SpatialStates,
  type ConsistentConvLstmNetOptions, type ConsistencyVariant, type ConsistentConvLstmOptions, type ConsistentRunOptions, type ConsistentRunResult,
  type DirectionStates, type Resnet50EncoderOptions, type Assignment, type MatchedSoftIoU, type ConsistentTrainingOptions,
  type ConsistentTrainingResult, type ConsistentEpoch, type ConsistentSplit, type ConsistentSegmentOptions, type ConsistentMemory, type ConsistentModel,
} from './models/consistent';
// The MALA U-Net predicting affinities
export { AffinityUNet, affinitySettings, type AffinityUNetOptions, type AffinityTrainingSettings } from './models/affinity';

export { classWeightsFromCounts, classWeightsFromStatistics, type ClassWeighting, type ClassStatistics } from './training/losses';
export { Optimizer, type OptimizerConfig, type OptimizerKind } from './training/optimizers';
export { learningRate, type Schedule } from './training/schedules';
export { Batch } from './training/batch';
export {
  Trainer, containsClass,
  type TrainerOptions, type Precision, type FitOptions, type FitResult, type Progress, type Phase, type LossConfig, type LossSpec, type LossFunction,
  type WindowFilter, type ValidationOptions, type PhaseShape,
} from './training/trainer';
export type { ValidationMetric } from './training/validation';
export type { DistributedOptions } from './training/distributed';
export type { LossScalingOptions } from './training/loss_scaling';
export { trainStep, trainStepAccumulated, type TrainStepOptions, type StepResult, type GradientClipping } from './training/step';
export { estimateStepMemory, formatBytes, type StepMemory } from './training/memory';

export { VolumeSampler, MultiSampler, classCounts, classStatistics, type DataSource, type SampledWindow, type VolumeSamplerOptions, type Size3 } from './data/samplers';
export { syntheticEm, type SyntheticEm, type SyntheticEmOptions } from './data/synthetic';
export { affinities, affinityMask } from './data/affinities';
export type { TargetKind } from './training/targets';
export {
  normalizeSlices, normalizeNonzero, gaussianBlur2d, gaussianKernel, clahe, mrPreprocess, preprocessVolume, preprocessZeroingNonFinite, type Normalization,
} from './data/preprocess';

/** The evaluation measures of the source papers (the BRATS regions' among them). */
export const metrics = { ...genericMetrics, ...rand2dMetrics, ...bratsMetrics };
export { percentile, type RandScores, type RandOptions, type AdaptedRandForm, type AdaptedRandScores, type ClassOverlap, type Labels, type Shape3 } from './evaluation/metrics';
export type { BoundaryPixels, SliceCombination, Rand2dScores, Rand2dSearch } from './evaluation/rand2d';
export { predictVolume, windowStarts, gaussianWeight, type StitchOptions } from './inference/predict_volume';
export type { Tta, FlipAxis, Overlap } from './inference/windows';
export type { NonFinitePolicy } from './core/non_finite';
export {
  predictChunked, planChunkedPrediction, predictBlock, readChunkedPlan, blockDone, writePyramid,
  type ChunkedPlan, type ChunkedPlanOptions, type ChunkedPredictOptions, type ChunkedOutput,
} from './inference/chunked';
export {
  runStages, blockPart, blockMarked, markBlock, readBlockResult, type BlockStage, type BlockPart, type StageRunOptions, type StageReport,
} from './inference/stages';
export { agglomerate, type AgglomerateOptions, type Agglomeration, type AgglomerationScoring, type FragmentOptions } from './segmentation/agglomerate';
export {
  segmentBlockwise, planSegmentation, segmentationStages, type BlockwiseOptions, type BlockwiseResult, type SegmentPlan,
} from './segmentation/blockwise';
export { outputVolumePath, writeSegmentations } from './segmentation/outputs';
export { pyramidLevels, omeAttributes, type OmeLevel, type OmeVersion } from './io/ome_zarr';

export { readVolumeAsync, writeVolumeAsync, describeZarr, type ZarrWriteOptions } from './io/volume_io';
export { openZarr, readZarr, writeZarr, ZarrWriter, isZarrPath, zarrCompressors, type ZarrArray, type ZarrCompressor, type ZarrCreateOptions, type ZarrDtype } from './io/zarr';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors, type NamedArray, type SafetensorsFile } from './io/safetensors';
export {
  readVolume, writeVolume, describeVolume, stackModalities, type Volume, type RawOptions, type WriteOptions, type WriteReport, type StoredType,
} from './io/volume_io';
export { parseNifti, serializeNifti, type NiftiVolume } from './io/nifti';
export { readNpy, writeNpy, parseNpy, parseNpyExact } from './io/npy';
export { readLabels, readLabelFrame, relabelSequential, type LabelVolume } from './io/labels';
