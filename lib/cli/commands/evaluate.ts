// segvol evaluate: a prediction against the truth (any volume format): overlap,
// Hausdorff, Rand/VI, pixel and warping error, boundary-map Rand F-scores, and the
// measures families add (--<name>).
import { InvalidArgumentError, type Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import { adaptedRandForms, metrics, type AdaptedRandForm, type RandScores, type Shape3 } from '../../evaluation/metrics';
import { boundaryPixelChoices, rand2dMetrics, sliceCombinations, type BoundaryPixels, type Rand2dSearch, type SliceCombination } from '../../evaluation/rand2d';
import { worstSlices } from '../../evaluation/slice_errors';
import { readLabels } from '../../io/labels';
import { readVolumeAsync } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { families } from '../../models';
import type { FamilyMeasure } from '../../models/family';
import { addOptions, integerList, terminal } from '../context';
import { drawRandCurves, evaluationCurves } from '../rand_plot';

type Result = Record<string, unknown>;

/**
 * Segments of the truth of a boundary prediction: a binary boundary map (boundary 1) becomes
 * the components of its non-boundary pixels per slice; segment ids are used as they are (0 ignored).
 */
function connectedSegments(truth: Float32Array, shape: Shape3): Int32Array {
  if (truth.some((v) => v !== 0 && v !== 1)) return Int32Array.from(truth);
  return metrics.connectedComponents(Uint8Array.from(truth, (v) => (v > 0.5 ? 0 : 1)), shape, { connectivity: 4 }).labels;
}

const formNames: Record<AdaptedRandForm, string> = {
  snemi3d: 'SNEMI3D', singletons: 'SNEMI3D, predicted 0 as singletons', skimage: 'scikit-image',
};

function adaptedRandOption(value: string): AdaptedRandForm {
  if (!adaptedRandForms.includes(value as AdaptedRandForm)) throw new InvalidArgumentError(`expected ${adaptedRandForms.join(', ')}, received ${value}`);
  return value as AdaptedRandForm;
}

function choiceOption<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`expected ${choices.join(', ')}, received ${value}`);
    return value as T;
  };
}

function numberList(value: string): number[] {
  const list = value.split(',').map((v) => v.trim());
  if (list.some((v) => v === '' || !Number.isFinite(Number(v)))) throw new InvalidArgumentError(`expected comma-separated numbers, received ${value}`);
  return list.map(Number);
}

/** The boundary-map Rand options of the command line. */
interface BoundaryRandOptions {
  boundaryPixels?: BoundaryPixels;
  combineSlices?: SliceCombination;
  thresholds?: number[];
  watershedLow?: number[];
  watershedHigh?: number[];
  watershedSize?: number[];
}
const boundaryRandFlags: Record<keyof BoundaryRandOptions, string> = {
  boundaryPixels: '--boundary-pixels', combineSlices: '--combine-slices', thresholds: '--thresholds',
  watershedLow: '--watershed-low', watershedHigh: '--watershed-high', watershedSize: '--watershed-size',
};

function printEvaluation(result: Result, measures: readonly FamilyMeasure[]): void {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : String(v));
  if (result.pixelError !== undefined) {
    const best = result.bestPixelError as { error: number; threshold: number };
    console.log(`pixel error: ${f(result.pixelError as number)} at 0.5; best ${f(best.error)} at threshold ${best.threshold.toFixed(2)}`);
  }
  if (result.rand) {
    const r = result.rand as RandScores;
    // scikit-image's precision divides by the truth's pairs, SNEMI3D's by the prediction's: say which.
    const over = r.adaptedRandForm === 'skimage' ? ['truth', 'prediction'] : ['prediction', 'truth'];
    console.log(`adapted Rand error (${formNames[r.adaptedRandForm]}) ${f(r.adaptedRandError)}: ` +
      `precision ${f(r.precision)} (over the ${over[0]}), recall ${f(r.recall)} (over the ${over[1]})`);
    console.log(`Rand F-score ${f(r.fScore)} (merge ${f(r.vMerge)}, split ${f(r.vSplit)}); VI split ${f(r.viSplit)}, merge ${f(r.viMerge)} bits`);
  }
  for (const [key, name] of [['randThreshold', 'connected components'], ['randWatershed', 'watershed']] as const) {
    const r = result[key] as Rand2dSearch | undefined;
    if (!r) continue;
    const p = r.parameters;
    const watershed = p.low === undefined ? '' : ` (watershed low ${p.low}, high ${p.high}, size ${p.sizeThreshold})`;
    console.log(`best 2D Rand F-score with ${name}: ${f(r.fScore)} (merge ${f(r.vMerge)}, split ${f(r.vSplit)}) ` +
      `at threshold ${r.threshold.toFixed(2)}, ${r.scores.segments} segments${watershed}; slices ${r.combine}, boundary pixels ${r.boundaryPixels}`);
  }
  if (result.warping) console.log(`warping error: ${f((result.warping as { warpingError: number }).warpingError)}`);
  for (const m of measures) if (result[m.name] !== undefined) m.print(result[m.name], terminal);
  if (result.overlap) {
    const o = result.overlap as { perClass: Array<Record<string, number>>; meanIU: number };
    console.log('class  dice    jaccard  ppv     sensitivity  avd%');
    o.perClass.forEach((c, k) => console.log(`${String(k).padEnd(5)}  ${f(c.dice!)}  ${f(c.jaccard!)}   ${f(c.ppv!)}  ${f(c.sensitivity!).padEnd(11)}  ${f(c.avd!)}`));
    console.log(`mean IU ${f(o.meanIU)}`);
  }
  if (result.hausdorff95) (result.hausdorff95 as number[]).forEach((d, k) => console.log(`class ${k + 1}: 95% Hausdorff ${f(d)}`));
}

/**
 * Boundary maps: 2D segmentation per slice, scored per slice as the 2D-3D ConvNet paper
 * evaluates (the truth relabelled into each slice's components), the best over the
 * segmentation's parameters, and the Rand curves' plot.
 */
async function evaluateBoundary(result: Result, pred: Float32Array, truth: Float32Array, shape: Shape3, plot: string | undefined,
  o: BoundaryRandOptions): Promise<void> {
  const segments = connectedSegments(truth, shape);
  for (const method of ['threshold', 'watershed'] as const) {
    const bar = terminal.progress(method === 'threshold' ? 'threshold search (connected components)' : 'watershed parameter search');
    result[method === 'threshold' ? 'randThreshold' : 'randWatershed'] = await rand2dMetrics.bestRand2d(pred, segments, shape, {
      method, connectivity: 4, boundaryPixels: o.boundaryPixels, combine: o.combineSlices, thresholds: o.thresholds,
      watershed: { low: o.watershedLow, high: o.watershedHigh, sizeThreshold: o.watershedSize },
      onProgress: (done, total) => bar.update(done / total, method === 'threshold' ? 'thresholds' : `parameter set ${done}/${total}`),
    });
    bar.done();
  }
  if (plot) {
    fs.writeFileSync(plot, drawRandCurves(evaluationCurves(result)));
    terminal.note(`wrote ${plot}`);
  }
}

export function registerEvaluate(program: Command): void {
  const measures = families.flatMap((f) => f.measures ?? []);
  const known = ['overlap', 'hausdorff', 'rand', 'pixel', 'warping', ...measures.map((m) => m.name)];
  const command = program.command('evaluate')
    .description(`compare a prediction with the truth (any volume format): overlap, Hausdorff, Rand/VI, pixel and warping error${measures.map((m) => `, ${m.name}`).join('')}`)
    .requiredOption('--pred <file>', 'predicted labels, or boundary probabilities in [0, 1]')
    .requiredOption('--truth <file>', 'true labels (class ids, segment ids, or a binary boundary map)')
    .option('--metrics <list>', `${known.join(', ')} (default: by the prediction: labels or probabilities)`)
    .option('--classes <n>', 'number of classes for overlap measures (default: largest id + 1)', (v) => integerList(v)[0]!)
    .option('--spacing <z,y,x>', 'voxel spacing for distances', (v) => v.split(',').map(Number))
    .option('--boundary', 'the prediction is a boundary map (probabilities, high = boundary): pixel error, the best 2D Rand F-score ' +
      'with connected components and with the watershed (each slice scored on its own), and their split/merge curves')
    .option('--boundary-pixels <choice>', 'with a boundary map: what predicted boundary pixels inside the truth count as: singletons (default, ' +
      'each its own segment), grow (joined to the segment that reaches them first), exclude (left out) or oneSegment (one per slice)',
    choiceOption(boundaryPixelChoices))
    .option('--combine-slices <how>', 'with a boundary map: pooled (default: the slices\' Rand sums added, one F) or mean (the mean of the slices\' F)',
      choiceOption(sliceCombinations))
    .option('--thresholds <list>', 'with a boundary map: the boundary thresholds searched (default 0.05,0.1,...,0.95)', numberList)
    .option('--watershed-low <list>', 'with a boundary map: the watershed low values searched (default 0.05,0.3)', numberList)
    .option('--watershed-high <list>', 'with a boundary map: the watershed high values searched (default 0.9,0.99,0.999)', numberList)
    .option('--watershed-size <list>', 'with a boundary map: the watershed size thresholds searched (default 0,25,100)', numberList)
    .option('--plot <file.png>', 'with a boundary map: draw the Rand split/merge curves')
    .option('--adapted-rand <form>', 'the adapted Rand error of label volumes: snemi3d (the SNEMI3D challenge\'s script, default), ' +
      'singletons (predicted 0 as one-voxel segments) or skimage (scikit-image\'s: predicted 0 is one segment)', adaptedRandOption);
  for (const m of measures) command.option(`--${m.name}`, m.description);
  for (const m of measures) addOptions(command, m.folders?.options ?? []);
  command.option('--json', 'print JSON instead of a table')
    .option('--out <file.json>', 'also write the scores as JSON, with the slices of most errors (segvol view --eval shows them)')
    .action(async (o: { pred: string; truth: string; metrics?: string; classes?: number; spacing?: number[]; boundary?: boolean; plot?: string;
      adaptedRand?: AdaptedRandForm; json?: boolean; out?: string } & BoundaryRandOptions & Record<string, unknown>) => {
      // Folders of predictions and cases: a family's measure scores every case and summarises.
      // (A Zarr store and a folder of PNG/TIFF slices are volumes, not folders of cases.)
      const caseFolder = fs.existsSync(o.pred) && fs.statSync(o.pred).isDirectory() && !isZarrPath(o.pred) &&
        !fs.readdirSync(o.pred).some((f) => /\.(png|tiff?)$/i.test(f));
      if (caseFolder) {
        if (o.out) throw new SegvolError('ERR_ARGUMENT', `--out writes the evaluation of one volume; --pred ${o.pred} is a folder of cases, scored by the family's measure`);
        const folderMeasures = measures.filter((m) => m.folders && o[m.name]);
        if (folderMeasures.length !== 1) {
          throw new SegvolError('ERR_ARGUMENT', `--pred ${o.pred} is a folder: give the measure that scores folders of cases ` +
            `(${measures.filter((m) => m.folders).map((m) => `--${m.name}`).join(', ') || 'none is installed'}), or a prediction file`);
        }
        folderMeasures[0]!.folders!.run(o, terminal);
        return;
      }
      const pred = await readVolumeAsync(o.pred);
      const truth = await readVolumeAsync(o.truth);
      if (pred.shape.join() !== truth.shape.join()) {
        throw new SegvolError('ERR_SHAPE', `the prediction ${o.pred} has shape (${pred.shape.join(', ')}), the truth ${o.truth} (${truth.shape.join(', ')}); they must match`);
      }
      if (pred.shape.length !== 2 && pred.shape.length !== 3) throw new SegvolError('ERR_SHAPE', `expected (H, W) or (D, H, W) volumes, received (${pred.shape.join(', ')})`);
      const shape = pred.shape as unknown as Shape3;
      const probabilities = o.boundary === true || pred.data.some((v) => v !== Math.round(v));
      if (o.plot && !probabilities) throw new SegvolError('ERR_ARGUMENT', '--plot draws the Rand curves of a boundary map: give boundary probabilities (and --boundary)');
      if (o.adaptedRand && probabilities) {
        throw new SegvolError('ERR_ARGUMENT', '--adapted-rand scores label volumes; the prediction is a boundary map (Rand F-scores): give its segment ids instead');
      }
      const boundaryFlag = (Object.keys(boundaryRandFlags) as Array<keyof BoundaryRandOptions>).find((k) => o[k] !== undefined);
      if (boundaryFlag && !probabilities) {
        throw new SegvolError('ERR_ARGUMENT', `${boundaryRandFlags[boundaryFlag]} sets the 2D Rand search of a boundary map; the prediction holds labels: give boundary probabilities (and --boundary)`);
      }
      const flagged = measures.filter((m) => o[m.name]);
      for (const m of flagged) {
        if (m.labelsOnly && probabilities) {
          throw new SegvolError('ERR_ARGUMENT', `--${m.name} compares label volumes; the prediction holds non-integer values: give its argmax labels`);
        }
      }
      let largestId = 0;
      if (!probabilities) for (const data of [pred.data, truth.data]) for (const v of data) largestId = Math.max(largestId, v);
      // Instance segmentations (many ids) get the Rand measures by default: a class overlap of thousands of ids means nothing.
      const labelDefault = largestId > 255 ? 'rand' : 'overlap,rand';
      const chosen = (o.metrics ?? (flagged.length ? flagged.map((m) => m.name).join(',') : probabilities ? 'pixel,rand,warping' : labelDefault))
        .split(',').map((m) => m.trim());
      const unknown = chosen.filter((m) => !known.includes(m));
      if (unknown.length) throw new SegvolError('ERR_ARGUMENT', `unknown metric '${unknown[0]}'; known: ${known.join(', ')}`);
      const result: Result = {};
      if (chosen.includes('pixel')) {
        result.pixelError = metrics.pixelError(pred.data, truth.data).error;
        result.bestPixelError = metrics.pixelError(pred.data, truth.data, { search: true });
      }
      if (chosen.includes('rand')) {
        if (probabilities) await evaluateBoundary(result, pred.data, truth.data, shape, o.plot, o);
        else {
          // Object ids exactly (float32 rounds ids above 2^24; .npy and Zarr are read exactly).
          const [p, t] = await Promise.all([readLabels(o.pred), readLabels(o.truth)]);
          result.rand = metrics.rand(p.data, t.data, { adaptedRand: o.adaptedRand ?? 'snemi3d' });
        }
      }
      if (chosen.includes('warping')) {
        const binary = (a: Float32Array) => Uint8Array.from(a, (v) => (v > 0.5 ? 0 : 1));  // boundary 1 -> background
        result.warping = metrics.warpingError(binary(pred.data), binary(truth.data), shape);
      }
      let largest = 0;
      for (const v of truth.data) largest = Math.max(largest, v);
      if (!probabilities) for (const v of pred.data) largest = Math.max(largest, v);
      const classes = o.classes ?? largest + 1;
      if (chosen.includes('overlap')) result.overlap = metrics.overlap(pred.data, truth.data, classes);
      for (const m of measures) if (chosen.includes(m.name)) result[m.name] = m.compute(pred.data, truth.data);
      if (chosen.includes('hausdorff')) {
        const spacing = (o.spacing ?? [1, 1, 1]) as [number, number, number];
        result.hausdorff95 = Array.from({ length: classes - 1 }, (_, k) => metrics.hausdorff95(
          Uint8Array.from(pred.data, (v) => (v === k + 1 ? 1 : 0)), Uint8Array.from(truth.data, (v) => (v === k + 1 ? 1 : 0)), shape, { spacing }));
      }
      const asJson = (r: Result) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2);
      if (o.out) {
        // Class maps compare ids; instance segmentations (the Rand default) score each slice's adapted Rand error.
        const kind = probabilities ? 'boundary' : largestId > 255 ? 'instances' : 'classes';
        const worst = worstSlices(pred.data, truth.data, shape.length === 3 ? shape : [1, ...shape] as unknown as Shape3, { kind });
        fs.writeFileSync(o.out, `${asJson({ ...result, worst, pred: path.resolve(o.pred), truth: path.resolve(o.truth) })}\n`);
        if (!o.json) terminal.note(`wrote ${o.out}`);
      }
      if (o.json) {
        console.log(asJson(result));
        return;
      }
      printEvaluation(result, measures);
    });
}
