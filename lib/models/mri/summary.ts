// BRATS scores over many cases: a row per case, then the mean, standard deviation, median
// and quartiles of every score, as the BRATS evaluation reports a test set. Written as CSV
// and JSON by `segvol evaluate --brats` over a folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { readVolume } from '../../io/volume_io';
import { findBratsCases, type BratsCaseFiles } from './brats';
import { bratsMetrics, type BratsScores } from './scores';
import { splitBratsFiles } from './split';

/**
 * How a case whose truth lacks a region (no enhancing tumour, common in low-grade cases)
 * counts. 'score' (default): scored as scores.ts does, 1 when the prediction lacks it too
 * and 0 when it does not (as the BraTS challenges since 2018 score an empty
 * enhancing tumour); 'skip': the case is left out of that
 * region's statistics (and a label absent from the truth out of its IU's).
 */
export type EmptyTruth = 'score' | 'skip';

export const bratsColumns = [
  'dice_complete', 'dice_core', 'dice_enhancing', 'ppv_complete', 'ppv_core', 'ppv_enhancing',
  'sensitivity_complete', 'sensitivity_core', 'sensitivity_enhancing', 'iu_0', 'iu_1', 'iu_2', 'iu_3', 'iu_4', 'mean_iu',
] as const;
export type BratsColumn = (typeof bratsColumns)[number];

export interface CaseRow {
  id: string;
  /** NaN where emptyTruth 'skip' leaves the case out. */
  scores: Record<BratsColumn, number>;
}

/** Statistics of one score over the cases that count for it (n of them). */
export interface ScoreStatistics {
  n: number;
  mean: number;
  /** The sample standard deviation (divisor n - 1; numpy's std with ddof=1); NaN for n < 2. */
  std: number;
  median: number;
  /** Quartiles, interpolated linearly between order statistics (numpy's percentile default). */
  q25: number;
  q75: number;
}

export interface BratsSummary {
  emptyTruth: EmptyTruth;
  cases: CaseRow[];
  statistics: Record<BratsColumn, ScoreStatistics>;
}

/** One case's row from its scores and its truth's region sizes. */
export function caseRow(id: string, s: BratsScores, truth: ArrayLike<number>, emptyTruth: EmptyTruth = 'score'): CaseRow {
  const skip = emptyTruth === 'skip';
  const present = new Set<number>();
  for (let i = 0; i < truth.length; ++i) present.add(truth[i]!);
  const region = (r: 'complete' | 'core' | 'enhancing', key: 'dice' | 'ppv' | 'sensitivity') => (skip && s[r].actual === 0 ? NaN : s[r][key]);
  const scores = {} as Record<BratsColumn, number>;
  for (const key of ['dice', 'ppv', 'sensitivity'] as const) {
    for (const r of ['complete', 'core', 'enhancing'] as const) scores[`${key}_${r}`] = region(r, key);
  }
  s.classIU.forEach((iu, label) => (scores[`iu_${label}` as BratsColumn] = skip && !present.has(label) ? NaN : iu));
  scores.mean_iu = s.meanIU;
  return { id, scores };
}

/** numpy's percentile with linear interpolation, on sorted values. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(at), hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** Mean, sample standard deviation, median and quartiles of the finite values. */
export function scoreStatistics(values: readonly number[]): ScoreStatistics {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  return { n, mean, std, median: percentile(v, 50), q25: percentile(v, 25), q75: percentile(v, 75) };
}

export function summarizeCases(rows: readonly CaseRow[], emptyTruth: EmptyTruth = 'score'): BratsSummary {
  const statistics = Object.fromEntries(bratsColumns.map((c) => [c, scoreStatistics(rows.map((r) => r.scores[c]))])) as Record<BratsColumn, ScoreStatistics>;
  return { emptyTruth, cases: [...rows], statistics };
}

const summaryRows: Array<[string, keyof ScoreStatistics]> = [['Mean', 'mean'], ['StdDev', 'std'], ['Median', 'median'], ['25quantile', 'q25'], ['75quantile', 'q75']];

/** The table as CSV: a header, a row per case, then the summary rows; left-out scores are empty cells. */
export function summaryCsv(summary: BratsSummary): string {
  const cell = (v: number) => (Number.isFinite(v) ? String(Number(v.toPrecision(10))) : '');
  const lines = [['case', ...bratsColumns].join(',')];
  for (const row of summary.cases) lines.push([row.id.includes(',') ? `"${row.id}"` : row.id, ...bratsColumns.map((c) => cell(row.scores[c]))].join(','));
  for (const [label, key] of summaryRows) lines.push([label, ...bratsColumns.map((c) => cell(summary.statistics[c][key]))].join(','));
  return `${lines.join('\n')}\n`;
}

/** The summary as JSON: left-out scores as null. */
export function summaryJson(summary: BratsSummary): string {
  return `${JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

const predictionExtensions = ['.nii.gz', '.nii', '.mha', '.npy', '.tif', '.tiff'];

/** A case's prediction in a folder: <id>.nii.gz (BraTS submissions' naming) or another volume format. */
function predictionOf(folder: string, id: string): string | undefined {
  return predictionExtensions.map((e) => path.join(folder, `${id}${e}`)).find((f) => fs.existsSync(f));
}

export interface FolderEvaluationOptions {
  /** A split file (segvol split) and the fold whose test cases to score (no fold for a hold-out). */
  split?: string;
  fold?: number;
  emptyTruth?: EmptyTruth;
  onCase?: (done: number, total: number, id: string) => void;
}

/**
 * Scores a folder of predictions (<case id>.nii.gz, labels 0-4) against the BRATS cases under
 * truthRoot (their seg files): every case there, or a split's test cases.
 */
export function evaluateBratsFolder(predFolder: string, truthRoot: string, options: FolderEvaluationOptions = {}): BratsSummary {
  const emptyTruth = options.emptyTruth ?? 'score';
  if (emptyTruth !== 'score' && emptyTruth !== 'skip') {
    throw new SegvolError('ERR_ARGUMENT', `evaluate: expected the empty-truth rule 'score' or 'skip', received ${describe(emptyTruth)}`);
  }
  if (!fs.existsSync(predFolder) || !fs.statSync(predFolder).isDirectory()) {
    throw new SegvolError('ERR_ARGUMENT', `evaluate: expected a folder of predictions (<case id>.nii.gz), received ${predFolder}`);
  }
  let files: BratsCaseFiles[];
  if (options.split !== undefined) {
    files = splitBratsFiles(options.split, 'test', options.fold);
    const root = path.resolve(truthRoot);
    const outside = files.filter((f) => path.relative(root, f.folder).startsWith('..'));
    if (outside.length) {
      throw new SegvolError('ERR_ARGUMENT', `evaluate: the split ${options.split} names cases outside ${truthRoot} (${outside[0]!.folder}); give --truth as the split's root`);
    }
  } else {
    if (options.fold !== undefined) throw new SegvolError('ERR_ARGUMENT', 'evaluate: --fold picks a fold of a split; give --split too');
    files = findBratsCases(truthRoot);
  }
  const unlabelled = files.filter((f) => !f.seg);
  if (unlabelled.length) {
    throw new SegvolError('ERR_ARGUMENT', `evaluate: ${unlabelled.length} case${unlabelled.length > 1 ? 's have' : ' has'} no seg file (${unlabelled[0]!.id}); ` +
      'scoring needs the true labels');
  }
  const missing = files.filter((f) => !predictionOf(predFolder, f.id));
  if (missing.length) {
    throw new SegvolError('ERR_ARGUMENT', `evaluate: no prediction in ${predFolder} for ${missing.length} of ${files.length} cases ` +
      `(${missing.slice(0, 3).map((f) => `${f.id}.nii.gz`).join(', ')}${missing.length > 3 ? ', ...' : ''}); ` +
      'name each <case id>.nii.gz (segvol predict --in <folder of cases> --out <folder> writes them so)');
  }
  const rows = files.map((f, i) => {
    options.onCase?.(i, files.length, f.id);
    const pred = readVolume(predictionOf(predFolder, f.id)!);
    const truth = readVolume(f.seg!);
    if (pred.shape.join() !== truth.shape.join()) {
      throw new SegvolError('ERR_SHAPE', `evaluate: case ${f.id}: the prediction is (${pred.shape.join(', ')}), the truth (${truth.shape.join(', ')}); they must match`);
    }
    return caseRow(f.id, bratsMetrics.brats(pred.data, truth.data), truth.data, emptyTruth);
  });
  options.onCase?.(files.length, files.length, '');
  return summarizeCases(rows, emptyTruth);
}
