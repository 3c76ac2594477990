// The cross-modality ConvLSTM encoder-decoder for multi-modal MRI (Tseng et al.
// 2017): per-modality encoders, cross-modality convolution, a ConvLSTM over slices;
// its two-phase regime, BRATS data and scores, and an MR phantom for its demo.
import type { ModelFamily } from '../family';
import { bratsMeasure, mriDemo, mriPredict, mriSynth, mriTraining } from './cli';
import { bratsCases } from './cli_cases';
import { crossModalityLayers } from './cross_modality';
import { mriPresets } from './network';

export { CrossModalityConvLstm, mriPresets, type CrossModalityConvLstmOptions } from './network';
export { crossModalityLayers, type CrossModalityOptions } from './cross_modality';
export { Unet2d, type Unet2dOptions } from './unet';
export { crossModalityPhases, paperLearningRates, type CrossModalityRegimeOptions, type LrReading } from './regime';
export { splitCases, splitBratsCases, writeCaseSplit, readCaseSplit, splitPart, splitBratsFiles, type CaseSplit, type SplitOptions } from './split';
export { predictSequences, sequenceStarts, type SequenceInferenceOptions } from './sequences';
export {
  caseRow, scoreStatistics, summarizeCases, summaryCsv, summaryJson, evaluateBratsFolder, bratsColumns,
  type BratsSummary, type CaseRow, type ScoreStatistics, type EmptyTruth, type BratsColumn, type FolderEvaluationOptions,
} from './summary';
export {
  findBratsCases, loadBratsCase, bratsSampler, bratsRole, bratsModalities, bratsClasses,
  type BratsCase, type BratsCaseFiles, type BratsModality, type BratsSamplerOptions,
} from './brats';
export { syntheticBrainMri, type Phantom, type PhantomOptions } from './phantom';
export { bratsMetrics, type BratsScores, type RegionScores } from './scores';
export { runBratsDemo, type BratsDemoOptions, type BratsDemoResult } from './demo';

export const mriFamily: ModelFamily = {
  name: 'mri',
  title: 'cross-modality ConvLSTM encoder-decoder for multi-modal MRI (Tseng et al. 2017)',
  presets: mriPresets,
  layers: crossModalityLayers,
  demo: mriDemo,
  synth: mriSynth,
  training: mriTraining,
  predict: mriPredict,
  measures: [bratsMeasure],
  cases: bratsCases,
};
