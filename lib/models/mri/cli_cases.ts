// The cross-modality family's command-line pieces over many cases: `segvol split` of a
// BRATS folder, `segvol evaluate --brats` over folders (a row per case and the summary,
// as CSV and JSON), and `segvol predict` of its models in slice sequences of the training
// length, one case or a folder of them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { checkOutputPath, labelDtype, readVolume, readVolumeAsync, writeVolumeAsync, type Volume } from '../../io/volume_io';
import type { ModelBase } from '../../nn/model';
import type { Normalization } from '../../data/preprocess';
import { argmaxClasses } from '../../ops';
import type { CliContext, CliOption, FamilyCases } from '../family';
import { findBratsCases, loadBratsCase, type BratsCaseFiles } from './brats';
import { predictSequences, trainingSequenceLength } from './sequences';
import { splitBratsFiles, writeCaseSplit } from './split';
import { bratsColumns, evaluateBratsFolder, summaryCsv, summaryJson, type EmptyTruth } from './summary';

export const bratsCases: FamilyCases = {
  description: 'BRATS case folders',
  split(o, cli) {
    const split = writeCaseSplit(o.out, o.cases, { seed: o.seed, stratify: o.stratify, ...(o.folds !== undefined ? { folds: o.folds } : { test: o.test! }) });
    const parts = split.folds ? `${split.folds.length} folds of ${split.folds.map((f) => f.length).join(', ')} cases` : `${split.train!.length} to train, ${split.test!.length} to test`;
    cli.print(`split ${split.cases.length} cases under ${o.cases}${split.stratified ? ' (each parent folder in proportion)' : ''}: ${parts}; seed ${split.seed}`);
    cli.print(`wrote ${o.out}`);
  },
};

const integer = (v: string) => {
  if (!/^\d+$/.test(v)) throw new SegvolError('ERR_ARGUMENT', `expected a whole number, received ${v}`);
  return Number(v);
};

const splitOptions: CliOption[] = [
  { flags: '--split <file.json>', description: 'a split written by segvol split: score (or predict) the test cases of --fold' },
  { flags: '--fold <k>', description: 'with --split of k folds: the fold, 0 to k-1', parse: integer },
];

export const bratsFolderEvaluation = {
  options: [
    ...splitOptions,
    {
      flags: '--empty-truth <rule>', description: 'with folders: a case whose truth lacks a region (no enhancing tumour): score (default: 1 if the prediction ' +
        'lacks it too, else 0) or skip (left out of that region\'s statistics)',
    },
    { flags: '--report <prefix>', description: 'with folders: write the per-case table and its statistics to <prefix>.csv and <prefix>.json' },
  ] as CliOption[],
  run(o: Record<string, unknown> & { pred: string; truth: string; json?: boolean }, cli: CliContext): void {
    const rule = (o.emptyTruth as string | undefined) ?? 'score';
    if (rule !== 'score' && rule !== 'skip') throw new SegvolError('ERR_ARGUMENT', `--empty-truth: expected score or skip, received ${rule}`);
    // The report's folder is made before any case is scored, so a bad path fails at once.
    if (o.report !== undefined) fs.mkdirSync(path.dirname(path.resolve(o.report as string)), { recursive: true });
    const bar = cli.progress('scoring cases');
    const summary = evaluateBratsFolder(o.pred, o.truth, {
      ...(o.split !== undefined ? { split: o.split as string } : {}), ...(o.fold !== undefined ? { fold: o.fold as number } : {}), emptyTruth: rule as EmptyTruth,
      onCase: (done, total, id) => bar.update(done / total, id),
    });
    bar.done();
    if (o.report !== undefined) {
      for (const [e, text] of [['.csv', summaryCsv(summary)], ['.json', summaryJson(summary)]] as const) fs.writeFileSync(`${o.report as string}${e}`, text);
    }
    if (o.json) {
      cli.print(summaryJson(summary).trimEnd());
    } else {
      const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '   -  ');
      const shown = ['dice_complete', 'dice_core', 'dice_enhancing', 'mean_iu'] as const;
      cli.print(`${'case'.padEnd(24)}  ${shown.map((c) => c.padEnd(14)).join('  ')}`);
      for (const row of summary.cases) cli.print(`${row.id.padEnd(24)}  ${shown.map((c) => f(row.scores[c]).padEnd(14)).join('  ')}`);
      for (const [label, key] of [['mean', 'mean'], ['std', 'std'], ['median', 'median']] as const) {
        cli.print(`${label.padEnd(24)}  ${shown.map((c) => f(summary.statistics[c][key]).padEnd(14)).join('  ')}`);
      }
      const skipped = bratsColumns.filter((c) => summary.statistics[c].n < summary.cases.length);
      cli.print(`${summary.cases.length} cases; empty truth regions: ${rule === 'score' ? 'scored (1 if also empty in the prediction, else 0)' :
        `left out (${skipped.map((c) => `${c} over ${summary.statistics[c].n}`).join(', ') || 'none were empty'})`}; std is the sample standard deviation`);
    }
    if (o.report !== undefined) cli.print(`wrote ${o.report as string}.csv and ${o.report as string}.json (every score: ${bratsColumns.length} columns)`);
  },
};

export const sequenceOptions: CliOption[] = [
  {
    flags: '--sequence <n|whole>', description: 'cross-modality and U-Net models: predict in sequences of n slices (default: the training window\'s depth), ' +
      'overlapping by stride 1 and averaged per slice; whole: the volume as one sequence',
    parse: (v) => (v === 'whole' ? v : integer(v)),
  },
  { flags: '--sequence-stride <n>', description: 'with --sequence: slices between consecutive sequences (default 1)', parse: integer },
  ...splitOptions.map((s) => ({ ...s, description: s.flags.startsWith('--split') ? 'with --in a folder of cases: predict the test cases of a split (segvol split)' : s.description })),
];

/** Whether a path is one BRATS case folder (its modality files, or the 2015 layout's folders of them). */
export function isBratsCase(file: string): boolean {
  if (!fs.existsSync(file) || !fs.statSync(file).isDirectory()) return false;
  try {
    return findBratsCases(file).length === 1 && path.resolve(findBratsCases(file)[0]!.folder) === path.resolve(file);
  } catch {
    return false;
  }
}

/** A BRATS case's modalities as raw (4, D, H, W) channels (the model applies its recorded normalisation), on the FLAIR's grid. */
export function caseVolume(files: BratsCaseFiles): Volume {
  const c = loadBratsCase(files, { normalize: 'none', labels: false });
  const { affine } = readVolume(files.modalities.flair);
  return { data: c.image, shape: [4, ...c.dims], dtype: 'float32', ...(c.spacing ? { spacing: c.spacing } : {}), ...(affine ? { affine } : {}) };
}

type PredictArgs = Record<string, unknown> & { in: string; out: string; window?: number[] };

async function predictOne(model: ModelBase, volume: Volume, out: string, o: PredictArgs, cli: CliContext, label: string): Promise<void> {
  if (volume.shape.length !== 4) {
    throw new SegvolError('ERR_SHAPE', `predict: expected (${model.inputs.input ?? 4}, D, H, W) channels (the modalities), received (${volume.shape.join(', ')})`);
  }
  const x = Tensor.fromArray(volume.data, [1, ...volume.shape]);
  const bar = cli.progress(label);
  let probs: Tensor;
  try {
    probs = await predictSequences(model, x, {
      ...(o.sequence !== undefined ? { length: o.sequence as number | 'whole' } : {}), ...(o.sequenceStride !== undefined ? { stride: o.sequenceStride as number } : {}),
      onProgress: (done, total) => bar.update(done / total, `sequence ${done}/${total}`),
    });
  } finally {
    x.dispose();
  }
  bar.done();
  const p = probs.toArray();
  const k = probs.shape[1]!;
  const spatial = volume.shape.slice(1);
  probs.dispose();
  const labels = !o.probabilities;
  await writeVolumeAsync(out, {
    data: labels ? argmaxClasses(p, 1, k) : p, shape: labels ? spatial : [k, ...spatial], dtype: 'float32',
    ...(volume.spacing ? { spacing: volume.spacing } : {}), ...(volume.affine ? { affine: volume.affine } : {}),
  }, labels ? { dtype: labelDtype(k) } : {});
  cli.print(`wrote ${out} (${(labels ? spatial : [k, ...spatial]).join('x')})`);
}

/**
 * `segvol predict` with a model of this family: slice sequences of the training length
 * (predictSequences), for a volume, a case folder, or a folder of cases (written as
 * <out>/<case id>.nii.gz). Windows (--window), test-time flips, --class, --non-finite and
 * Zarr output go to the generic stitching instead (resolves false).
 */
export async function predictInSequences(model: ModelBase, o: PredictArgs, cli: CliContext): Promise<boolean> {
  const generic = o.window !== undefined || o.tta !== undefined || o.class !== undefined || o.windowBatch !== undefined || o.nonFinite !== undefined ||
    /\.zarr\/?$/i.test(o.out) || o.block !== undefined || o.queue !== undefined;
  if (generic) {
    for (const flag of ['sequence', 'sequenceStride', 'split', 'fold']) {
      if (o[flag] !== undefined) {
        throw new SegvolError('ERR_ARGUMENT', '--sequence, --sequence-stride, --split and --fold go with sequence inference; drop --window, --tta, --class, --window-batch, ' +
          '--non-finite and Zarr output');
      }
    }
    return false;
  }
  if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize as Normalization };
  const isFolder = fs.existsSync(o.in) && fs.statSync(o.in).isDirectory();
  if (isFolder && !isBratsCase(o.in)) {
    if (o.split === undefined && o.fold !== undefined) throw new SegvolError('ERR_ARGUMENT', '--fold picks a fold of a split; give --split too');
    const files = o.split !== undefined ? splitBratsFiles(o.split as string, 'test', o.fold as number | undefined) : findBratsCases(o.in);
    const outside = files.find((f) => path.relative(path.resolve(o.in), f.folder).startsWith('..'));
    if (outside) throw new SegvolError('ERR_ARGUMENT', `--split ${o.split as string} names ${outside.folder}, outside --in ${o.in}; give --in as the split's root`);
    if (fs.existsSync(o.out) && !fs.statSync(o.out).isDirectory()) throw new SegvolError('ERR_ARGUMENT', `--out: with a folder of cases, give a folder; ${o.out} is a file`);
    fs.mkdirSync(o.out, { recursive: true });
    const length = o.sequence ?? trainingSequenceLength(model);
    cli.print(`predicting ${files.length} cases in sequences of ${length === 'whole' ? 'the whole volume' : `${String(length)} slices`} into ${o.out}`);
    for (const [i, f] of files.entries()) await predictOne(model, caseVolume(f), path.join(o.out, `${f.id}.nii.gz`), o, cli, `case ${i + 1}/${files.length} ${f.id}`);
    return true;
  }
  if (o.split !== undefined || o.fold !== undefined) throw new SegvolError('ERR_ARGUMENT', '--split and --fold pick cases of a folder of cases; --in is one case');
  checkOutputPath(o.out, '--out');
  const volume = isFolder ? caseVolume(findBratsCases(o.in)[0]!) : await readVolumeAsync(o.in);
  await predictOne(model, volume, o.out, o, cli, 'predicting');
  return true;
}
