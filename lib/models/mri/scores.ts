// The BRATS evaluation Tseng et al. report: Dice, PPV and sensitivity of the tumour
// regions, and IU per label with its mean.
import { SegvolError } from '../../core/errors';
import { metrics, sameLength, type Labels } from '../../evaluation/metrics';

/** Dice, PPV and sensitivity of one BRATS region, and its voxel counts. */
export interface RegionScores {
  dice: number;
  ppv: number;
  sensitivity: number;
  predicted: number;
  actual: number;
}

export interface BratsScores {
  complete: RegionScores;
  core: RegionScores;
  enhancing: RegionScores;
  /** IU (Jaccard) of each label 0-4 (1 when a label is absent from both). */
  classIU: number[];
  /** Mean IU over the labels present in either volume. */
  meanIU: number;
}

export const bratsMetrics = {
  /** BRATS regions from labels 0..4: complete (1-4), core (1, 3, 4), enhancing (4). */
  bratsRegions(labels: Labels): { complete: Uint8Array; core: Uint8Array; enhancing: Uint8Array } {
    const complete = new Uint8Array(labels.length), core = new Uint8Array(labels.length), enhancing = new Uint8Array(labels.length);
    for (let i = 0; i < labels.length; ++i) {
      const l = labels[i]!;
      if (!(l >= 0 && l <= 4 && Number.isInteger(l))) {
        throw new SegvolError('ERR_ARGUMENT', `bratsRegions: expected labels 0..4, received ${l} at index ${i}`);
      }
      complete[i] = l > 0 ? 1 : 0;
      core[i] = l === 1 || l === 3 || l === 4 ? 1 : 0;
      enhancing[i] = l === 4 ? 1 : 0;
    }
    return { complete, core, enhancing };
  },

  /**
   * The BRATS evaluation: Dice, PPV and sensitivity of the complete tumour (labels 1-4), the
   * core (1, 3, 4) and the enhancing tumour (4), as Tseng et al.'s Table 4 and the BRATS
   * online system report them; with per-class IU and the mean IU over classes 0-4 (their
   * Tables 1-3). A region empty in both volumes scores 1 (Dice, PPV, sensitivity).
   */
  brats(pred: Labels, truth: Labels): BratsScores {
    sameLength(pred, truth, 'brats');
    const p = bratsMetrics.bratsRegions(pred), t = bratsMetrics.bratsRegions(truth);
    const region = (a: Uint8Array, b: Uint8Array): RegionScores => {
      let tp = 0, predicted = 0, actual = 0;
      for (let i = 0; i < a.length; ++i) {
        tp += a[i]! & b[i]!;
        predicted += a[i]!;
        actual += b[i]!;
      }
      return {
        dice: predicted + actual ? (2 * tp) / (predicted + actual) : 1,
        ppv: predicted ? tp / predicted : actual ? 0 : 1,
        sensitivity: actual ? tp / actual : predicted ? 0 : 1,
        predicted, actual,
      };
    };
    const overlap = metrics.overlap(pred, truth, 5);
    return {
      complete: region(p.complete, t.complete), core: region(p.core, t.core), enhancing: region(p.enhancing, t.enhancing),
      classIU: overlap.perClass.map((c) => c.jaccard), meanIU: overlap.meanIU,
    };
  },
};
