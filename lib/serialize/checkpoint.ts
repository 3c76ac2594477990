// The trainer state a checkpoint carries in its model file's metadata (key
// 'segvol'): where the fit is, its random generators, the optimizer's rule and
// update count, and validation progress. Reads both formats; format 1 (segvol 0.1)
// counted epochs of stepsPerEpoch steps within "stages", converted here.
import { SegvolError } from '../core/errors';

export const checkpointFormat = 'segvol-checkpoint-2';

/** Where a fit is: the phase, the steps done in it, the steps done in all. */
export interface CheckpointPosition {
  phase: number;
  stepInPhase: number;
  step: number;
}

export interface CheckpointState {
  position: CheckpointPosition;
  /**
   * Format 1 only: the epoch and step within it, which become stepInPhase once the fit's
   * stepsPerEpoch is known (epoch * stepsPerEpoch + stepInEpoch).
   */
  legacyEpoch?: { epoch: number; stepInEpoch: number };
  validation?: { best: number; bestStep: number; sinceBest: number };
  random: number;
  modelRandom?: number;
  optimizer: { steps: number; config?: { kind: string } & Record<string, unknown> };
  /** Dynamic loss scaling (fp16 training): the scale and the clean steps since the last overflow. */
  lossScaler?: { scale: number; stepsSinceOverflow: number };
}

/** The metadata value of a checkpoint's trainer state. */
export function encodeCheckpointState(state: Omit<CheckpointState, 'legacyEpoch'>): string {
  return JSON.stringify({
    format: checkpointFormat, position: state.position, validation: state.validation ?? null, random: state.random,
    ...(state.modelRandom !== undefined ? { modelRandom: state.modelRandom } : {}), optimizer: state.optimizer,
    ...(state.lossScaler ? { lossScaler: state.lossScaler } : {}),
  });
}

/** Reads a checkpoint's trainer state (either format); `where` names the file in errors. */
export function decodeCheckpointState(raw: string | undefined, where: string): CheckpointState {
  if (!raw) throw new SegvolError('ERR_FORMAT', `resume: ${where} has no segvol trainer state; it holds weights only (use model.loadWeights)`);
  const state = JSON.parse(raw) as {
    format: string; position: Partial<CheckpointPosition> & { stage?: number; epoch?: number; stepInEpoch?: number; step: number }; random: number;
    modelRandom?: number; optimizer: CheckpointState['optimizer']; validation?: CheckpointState['validation'] | null;
    lossScaler?: CheckpointState['lossScaler'];
  };
  if (state.format !== checkpointFormat && state.format !== 'segvol-checkpoint-1') {
    throw new SegvolError('ERR_FORMAT', `resume: ${where} has unknown format ${state.format}; this segvol reads segvol-checkpoint-1 and -2`);
  }
  const p = state.position;
  const legacy = state.format === 'segvol-checkpoint-1';
  return {
    // Format 1 called phases stages.
    position: legacy ? { phase: p.stage ?? 0, stepInPhase: 0, step: p.step } : { phase: p.phase ?? 0, stepInPhase: p.stepInPhase ?? 0, step: p.step },
    ...(legacy ? { legacyEpoch: { epoch: p.epoch ?? 0, stepInEpoch: p.stepInEpoch ?? 0 } } : {}),
    // JSON has no NaN: a best score not yet set comes back as null.
    ...(state.validation ? { validation: { ...state.validation, best: state.validation.best ?? NaN } } : {}),
    random: state.random,
    ...(state.modelRandom !== undefined ? { modelRandom: state.modelRandom } : {}),
    optimizer: state.optimizer,
    ...(state.lossScaler ? { lossScaler: state.lossScaler } : {}),
  };
}
