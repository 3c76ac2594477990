import { describe, SegvolError } from '../core/errors';

/**
 * Learning-rate schedules over the epochs of a stage (the paper resets the rate at each bootstrap stage).
 * paper: 1e-6 + 1e-2 * 0.5^(epoch / 100); constant; step: lr * factor^floor(epoch / every); exponential: lr * gamma^epoch.
 */
export type Schedule =
  | { kind: 'paper' }
  | { kind: 'constant'; lr: number }
  | { kind: 'step'; lr: number; every: number; factor: number }
  | { kind: 'exponential'; lr: number; gamma: number };

export function learningRate(schedule: Schedule, epochInStage: number): number {
  switch (schedule.kind) {
    case 'paper':
      return 1e-6 + 1e-2 * 0.5 ** (epochInStage / 100);
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
