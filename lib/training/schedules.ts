import { describe, SegvolError } from '../core/errors';

/**
 * Learning-rate schedules over a phase (the paper resets the rate at each bootstrap stage).
 * paper: 1e-6 + 1e-2 * 0.5^(t / 100), t the update within the phase: the paper's "epoch" is one update;
 * constant; step: lr * factor^floor(epoch / every); exponential: lr * gamma^epoch, with epochs being
 * passes over the data.
 */
export type Schedule =
  | { kind: 'paper' }
  | { kind: 'constant'; lr: number }
  | { kind: 'step'; lr: number; every: number; factor: number }
  | { kind: 'exponential'; lr: number; gamma: number };

export function learningRate(schedule: Schedule, epochInStage: number, stepInStage = epochInStage): number {
  switch (schedule.kind) {
    case 'paper':
      return 1e-6 + 1e-2 * 0.5 ** (stepInStage / 100);
    case 'constant':
      return schedule.lr;
    case 'step':
      return schedule.lr * schedule.factor ** Math.floor(epochInStage / schedule.every);
    case 'exponential':
      return schedule.lr * schedule.gamma ** epochInStage;
    default:
      throw new SegvolError('ERR_ARGUMENT', `schedule: unknown kind ${describe((schedule as { kind: unknown }).kind)}`);
  }
}
