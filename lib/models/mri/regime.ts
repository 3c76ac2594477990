// Training regimes of the source papers as phases for Trainer.fit.
import { describe, SegvolError } from '../../core/errors';
import { rejectUnknown } from '../../core/validate';
import { containsClass, type Phase } from '../../training/trainer';

export type LrReading = 'common' | 'literal';

/** The two phases' rates under each reading of the paper's "10e-4" and "10e-6". */
export const paperLearningRates: Readonly<Record<LrReading, readonly [number, number]>> = {
  common: [1e-4, 1e-6],
  literal: [1e-3, 1e-5],
};

export interface CrossModalityRegimeOptions {
  /** The slice plane (H, W) of a window (default [240, 240]: a whole BRATS slice). */
  plane?: readonly [number, number];
  /** Consecutive slices per sequence (default 3). */
  sequence?: number;
  /** Sequences per step (default 3). */
  batchSize?: number;
  /** Steps of the two phases (default [1000, 1000]); or give epochs. */
  steps?: readonly [number, number];
  epochs?: readonly [number, number];
  /**
   * How to read the paper's rates, printed "10e-4" and "10e-6" (section 4.2): 'common'
   * (default) takes them as 10^-4 and 10^-6, 'literal' as 10 x 10^-4 = 1e-3 and 1e-5.
   * docs/mri.md gives both readings. lr and fineTuneLr, when given, win.
   */
  lrReading?: LrReading;
  /** Adam's rate in phase 1 and the rate of phase 2 (default: the lrReading's). */
  lr?: number;
  fineTuneLr?: number;
  /** The labels counted as tumour by phase 1's filter (default 1-4). */
  tumourClasses?: readonly number[];
}

/**
 * Tseng et al.'s two-phase training (section 4.2): phase 1 'tumour' samples only sequences
 * holding tumour, with median frequency balancing, Adam at 1e-4; phase 2 'all' samples every
 * sequence, unweighted, at 1e-6 (Adam's state carries over). Batch 3, sequences of 3 slices.
 * lrReading 'literal' reads the printed "10e-4" and "10e-6" as 1e-3 and 1e-5. The U-Net
 * baseline trains with batchSize 10 and sequence 1 (single slices).
 */
export function crossModalityPhases(options: CrossModalityRegimeOptions = {}): Phase[] {
  const known = ['plane', 'sequence', 'batchSize', 'steps', 'epochs', 'lrReading', 'lr', 'fineTuneLr', 'tumourClasses'];
  rejectUnknown(options, known, 'crossModalityPhases');
  const reading = options.lrReading ?? 'common';
  if (!Object.prototype.hasOwnProperty.call(paperLearningRates, reading)) {
    throw new SegvolError('ERR_ARGUMENT', `crossModalityPhases: expected lrReading 'common' (1e-4, 1e-6) or 'literal' (1e-3, 1e-5), received ${describe(reading)}`);
  }
  const [lr, fineTuneLr] = [options.lr ?? paperLearningRates[reading][0], options.fineTuneLr ?? paperLearningRates[reading][1]];
  if (options.steps && options.epochs) throw new SegvolError('ERR_ARGUMENT', 'crossModalityPhases: give steps or epochs, not both');
  const pair = (v: readonly number[] | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length !== 2 || !v.every((n) => Number.isInteger(n) && n >= 0)) {
      throw new SegvolError('ERR_ARGUMENT', `crossModalityPhases: expected ${name} as two counts [phase 1, phase 2], received ${describe(v)}`);
    }
    return v as [number, number];
  };
  const steps = pair(options.steps, 'steps'), epochs = pair(options.epochs, 'epochs');
  const [h, w] = options.plane ?? [240, 240];
  const size = [options.sequence ?? 3, h, w] as const;
  const batchSize = options.batchSize ?? 3;
  const length = (i: 0 | 1) => (epochs ? { epochs: epochs[i] } : { steps: (steps ?? [1000, 1000])[i] });
  return [
    {
      name: 'tumour', size, batchSize, ...length(0), filter: containsClass([...(options.tumourClasses ?? [1, 2, 3, 4])]),
      loss: { kind: 'crossEntropy', classWeights: 'medianFrequency' }, optimizer: { kind: 'adam', lr },
    },
    // The same update rule keeps Adam's moments across the phases.
    { name: 'all', size, batchSize, ...length(1), loss: { kind: 'crossEntropy' }, optimizer: { kind: 'adam', lr: fineTuneLr }, lr: fineTuneLr },
  ];
}
