// The cross-modality ConvLSTM's pieces of the command line: its demo on MR phantoms,
// phantoms written as BRATS case folders with a train.json, BRATS folders as training
// data, Tseng et al.'s two phases as settings 'paper', a case folder as a prediction
// input, and the BRATS scores of `segvol evaluate --brats`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import type { Size3 } from '../../data/samplers';
import { readVolume, writeVolume, type Volume } from '../../io/volume_io';
import type { ModelInfo } from '../../nn/model';
import type { CliContext, FamilyDemo, FamilyMeasure, FamilyPredict, FamilySynth, FamilyTraining, TrainConfigObject } from '../family';
import { bratsClasses, bratsModalities, bratsRole, bratsSampler, findBratsCases, loadBratsCase } from './brats';
import { runBratsDemo } from './demo';
import { syntheticBrainMri } from './phantom';
import { crossModalityPhases } from './regime';
import { bratsMetrics, type BratsScores } from './scores';
import { positiveInteger } from '../../core/validate';
import { bratsFolderEvaluation, predictInSequences, sequenceOptions } from './cli_cases';
import { splitBratsFiles } from './split';

/** The BRATS table: Dice, PPV and sensitivity per region, then IU per label and the mean IU (beside a second column set when given). */
export function printBratsScores(cli: CliContext, a: BratsScores, b?: BratsScores): void {
  const f = (v: number) => v.toFixed(4);
  const row = (s: BratsScores, r: 'complete' | 'core' | 'enhancing') => `${f(s[r].dice)}  ${f(s[r].ppv)}  ${f(s[r].sensitivity)}`;
  cli.print(`region     dice    ppv     sensitivity${b ? '      dice    ppv     sensitivity' : ''}`);
  for (const r of ['complete', 'core', 'enhancing'] as const) cli.print(`${r.padEnd(9)}  ${row(a, r)}${b ? `       ${row(b, r)}` : ''}`);
  cli.print(`IU per label 0-4: ${a.classIU.map(f).join(' ')}${b ? `   (${b.classIU.map(f).join(' ')})` : ''}`);
  cli.print(`mean IU ${f(a.meanIU)}${b ? `   (${f(b.meanIU)})` : ''}`);
}

export const mriDemo: FamilyDemo = {
  name: 'brats',
  description: 'the cross-modality ConvLSTM on multi-modal brain MR phantoms',
  defaultSeconds: 120,
  async run(o, cli) {
    cli.print('segvol demo --model brats: 8 synthetic multi-modal brain MR phantoms 24x64x64 (flair, t1, t1ce, t2; 6 to train, 2 held out), ' +
      `cross-modality ConvLSTM encoder-decoder (16 channels), two-phase training for ${o.seconds} s on the CPU`);
    const bar = cli.progress('training');
    const result = await runBratsDemo({
      seconds: o.seconds, seed: o.seed, ...(o.out ? { out: o.out } : {}), ...(o.precision ? { precision: o.precision } : {}),
      onProgress: (p, elapsed) => bar.update(Math.min(1, elapsed / o.seconds), `${p.phaseName} step ${p.step}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}`),
    });
    bar.done();
    cli.print(`trained ${result.steps[0]} steps on tumour sequences (median frequency weights), then ${result.steps[1]} on all sequences (unweighted)`);
    cli.print('held-out phantoms       trained                     untrained');
    printBratsScores(cli, result.scores, result.untrained);
    cli.print('wrote:');
    for (const f of result.files) cli.print(`  ${f}`);
    result.model.dispose();
  },
};

export const mriSynth: FamilySynth = {
  flag: { flags: '--brats', description: 'BRATS-layout phantoms: train/ (4 cases), val/ (1 case, scored during training) and test/ (1 case, for evaluate), each <case>_flair/_t1/_t1ce/_t2/_seg.nii.gz' },
  options: [{ flags: '--cases <n>', description: 'training cases with --brats', parse: (v) => Number(v), default: 4 }],
  defaultSize: [24, 64, 64],
  run(o, cli) {
    const [depth, height, width] = o.size;
    const cases = o.cases as number;
    positiveInteger(cases, '--cases');
    const write = (group: string, id: string, seed: number) => {
      const p = syntheticBrainMri({ depth, height, width, seed });
      const folder = path.join(o.out, group, id);
      fs.mkdirSync(folder, { recursive: true });
      const n = depth * height * width;
      p.modalities.forEach((m, c) => writeVolume(path.join(folder, `${id}_${m}.nii.gz`), { data: p.image.subarray(c * n, (c + 1) * n), shape: p.dims, dtype: 'float32' },
        { dtype: 'int16' }));
      writeVolume(path.join(folder, `${id}_seg.nii.gz`), { data: p.labels, shape: p.dims, dtype: 'float32' }, { dtype: 'uint8' });
    };
    for (let i = 1; i <= cases; ++i) write('train', `phantom_${String(i).padStart(3, '0')}`, o.seed * 1000 + i);
    // Validation picks the best model: it must not be the case the README then scores.
    write('val', 'phantom_val', o.seed * 1000 + 998);
    write('test', 'phantom_test', o.seed * 1000 + 999);
    const config = {
      model: { preset: 'crossModalityConvLstm', channels: 16, seed: o.seed },
      settings: 'paper', size: [3, height, width], steps: 50,
      optimizer: { kind: 'adam', lr: 0.001 },
      data: { brats: 'train' }, validation: { brats: 'val', windows: 4 },
      seed: o.seed, checkpoint: { path: 'model.safetensors', every: 25 },
    };
    fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
    cli.print(`wrote ${cases} training cases to ${path.join(o.out, 'train')}, a validation case to ${path.join(o.out, 'val')}, a test case to ` +
      `${path.join(o.out, 'test')} (${depth}x${height}x${width}), and train.json`);
  },
};

/** BRATS cases as training (and validation) data: slice sequences of the four modalities, normalised per case and modality. */
function loadBrats(config: TrainConfigObject, baseDir: string, cli: CliContext) {
  const data = config.data as {
    brats: string; split?: string; fold?: number; normalize?: 'slice' | 'mr' | 'nonzero' | 'none'; flip?: { x?: boolean }; classNames?: string[];
  };
  const normalize = data.normalize ?? 'nonzero';
  const load = (folder: string, what: string, split?: string) => {
    const files = split !== undefined ? splitBratsFiles(path.resolve(baseDir, split), 'train', data.fold) : findBratsCases(path.resolve(baseDir, folder));
    if (split !== undefined) {
      const root = path.resolve(baseDir, folder);
      const outside = files.find((f) => path.relative(root, f.folder).startsWith('..'));
      if (outside) throw new SegvolError('ERR_ARGUMENT', `config: data.split ${split} names ${outside.folder}, outside data.brats ${folder}; give data.brats as the split's root`);
    }
    const bar = cli.progress(`loading ${files.length} BRATS case${files.length > 1 ? 's' : ''} (${what})`);
    const cases = files.map((f, i) => {
      bar.update(i / files.length, `case ${i + 1}/${files.length}`);
      return loadBratsCase(f, { normalize });
    });
    bar.done();
    return cases;
  };
  const cases = load(data.brats, data.split !== undefined ? `training${data.fold !== undefined ? `, fold ${data.fold}` : ''} of ${data.split}` : 'training', data.split);
  const sampler = bratsSampler(cases, { flip: data.flip?.x ?? true });
  const v = config.validation as { brats?: string } | undefined;
  if (v && v.brats === undefined) throw new SegvolError('ERR_ARGUMENT', 'config: with data.brats, give validation.brats (a folder of held-out cases)');
  const validation = v?.brats !== undefined ? bratsSampler(load(v.brats, 'validation'), { flip: false }) : undefined;
  const info: ModelInfo = {
    normalize, channels: { input: [...bratsModalities] }, classes: data.classNames ? [...data.classNames] : [...bratsClasses],
    ...(cases[0]!.spacing ? { spacing: cases[0]!.spacing } : {}),
  };
  return validation ? { data: sampler, validation, info } : { data: sampler, info };
}

export const mriTraining: FamilyTraining = {
  modelKeys: ['modalities', 'classes', 'channels', 'levels', 'kernel', 'lstmKernel', 'multiModal', 'fusion', 'convLstm', 'decoderActivation', 'init', 'seed'],
  schema: { '': ['lrReading'], data: ['brats', 'split', 'fold'], validation: ['brats'] },
  check(config, source) {
    for (const [key, d] of [['data', config.data], ['validation', config.validation]] as const) {
      if (d?.brats === undefined) continue;
      if (typeof d.brats !== 'string' || d.volume !== undefined || d.labels !== undefined || d.mask !== undefined) {
        throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${key}.brats is a folder of BRATS cases (a path), given instead of ${key}.volume, labels and mask`);
      }
    }
    if ((config.data.split !== undefined || config.data.fold !== undefined) && config.data.brats === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: data.split and data.fold go with data.brats (the folder the split was made from)`);
    }
    if (config.data.fold !== undefined && config.data.split === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: data.fold picks a fold of data.split; give data.split too`);
    }
    if (config.validation?.brats !== undefined && config.data.brats === undefined) {
      throw new SegvolError('ERR_ARGUMENT', 'config: validation.brats goes with data.brats; give validation.volume and labels for volume data');
    }
  },
  paperPresets: ['crossModalityConvLstm', 'unet2d'],
  paperSettings(config) {
    const unet = config.model.preset === 'unet2d';
    if (config.settings !== 'paper' || (config.model.preset !== 'crossModalityConvLstm' && !unet)) return undefined;
    if (config.lrReading !== undefined && config.lrReading !== 'common' && config.lrReading !== 'literal') {
      throw new SegvolError('ERR_ARGUMENT', `config: expected lrReading "common" (the paper's rates as 1e-4, 1e-6) or "literal" (1e-3, 1e-5), ` +
        `received ${JSON.stringify(config.lrReading)}`);
    }
    if (config.phases !== undefined || config.stages !== undefined) return {};
    // The U-Net baseline trains on single slices, 10 per batch (section 4.3); the ConvLSTM on 3 sequences of 3.
    const size = (config.size as Size3 | undefined) ?? [unet ? 1 : 3, 240, 240];
    const each = (n: number | undefined) => [n ?? 1000, n ?? 1000] as [number, number];
    const lr = (config.optimizer as { lr?: number } | undefined)?.lr;
    return {
      phases: crossModalityPhases({
        sequence: size[0], plane: [size[1], size[2]], batchSize: (config.batchSize as number | undefined) ?? (unet ? 10 : 3),
        ...(config.lrReading !== undefined ? { lrReading: config.lrReading as 'common' | 'literal' } : {}),
        ...(config.epochs ? { epochs: each(config.epochs as number) } : { steps: each(config.steps as number | undefined) }),
        ...(lr !== undefined ? { lr } : {}),
      }),
    };
  },
  loadData: (config, baseDir, cli) => (config.data.brats !== undefined ? loadBrats(config, baseDir, cli) : undefined),
};

/** Whether a path is one BRATS case folder (its modality files, or the 2015 layout's folders of them). */
function isBratsCase(file: string): boolean {
  return fs.existsSync(file) && fs.statSync(file).isDirectory() && fs.readdirSync(file).some((f) => bratsRole(f) !== undefined || bratsRole(`${f}.mha`) !== undefined);
}

export const mriPredict: FamilyPredict = {
  input: 'a BRATS case folder (its four modalities), or a folder of cases (--out a folder ending in /: <case id>.nii.gz each)',
  options: sequenceOptions,
  run: (model, options, cli) => predictInSequences(model, options, cli),
  /** A BRATS case's modalities as raw (4, D, H, W) channels in the order flair, t1, t1ce, t2 (the model applies its recorded normalisation). */
  readInput(folder): Volume | undefined {
    if (!isBratsCase(folder)) return undefined;
    const cases = findBratsCases(folder);
    if (cases.length !== 1) throw new SegvolError('ERR_ARGUMENT', `${folder}: expected one BRATS case, found ${cases.length}; predict one case at a time`);
    const c = loadBratsCase(cases[0]!, { normalize: 'none', labels: false });
    // The prediction keeps the FLAIR's grid (its affine), as BRATS labels do.
    const { affine } = readVolume(cases[0]!.modalities.flair);
    return { data: c.image, shape: [4, ...c.dims], dtype: 'float32', ...(c.spacing ? { spacing: c.spacing } : {}), ...(affine ? { affine } : {}) };
  },
};

export const bratsMeasure: FamilyMeasure = {
  name: 'brats',
  description: 'BRATS labels 0-4: Dice, PPV and sensitivity of the complete, core and enhancing tumour, IU per label and mean IU; ' +
    'with --pred a folder of <case id>.nii.gz and --truth a folder of cases: every case, then mean, std, median and quartiles',
  labelsOnly: true,
  compute: (pred, truth) => bratsMetrics.brats(pred, truth),
  print: (result, cli) => printBratsScores(cli, result as BratsScores),
  folders: bratsFolderEvaluation,
};
