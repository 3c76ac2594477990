// Learning-rate schedules over a phase, each checked for the fields it needs.
import { describe, SegvolError } from '../core/errors';
import { checkObject, positiveNumber, rejectUnknown } from '../core/validate';

/**
 * Learning-rate schedules over a phase (the paper resets the rate at each bootstrap stage).
 * paper: 1e-6 + 1e-2 * 0.5^(t / 100), t the update within the phase: the paper's "epoch" is one update;
 * constant; step: lr * factor^floor(epoch / every); exponential: lr * gamma^epoch, with epochs being
 * passes over the data. Where lr is left out, the optimizer's lr is the base rate.
 */
export type Schedule =
  | { kind: 'paper' }
  | { kind: 'constant'; lr?: number }
  | { kind: 'step'; lr?: number; every: number; factor: number }
  | { kind: 'exponential'; lr?: number; gamma: number };

/** The fields each kind needs, and those it may take. */
const fields: Record<Schedule['kind'], { required: readonly string[]; optional: readonly string[] }> = {
  paper: { required: [], optional: [] },
  constant: { required: [], optional: ['lr'] },
  step: { required: ['every', 'factor'], optional: ['lr'] },
  exponential: { required: ['gamma'], optional: ['lr'] },
};

/**
 * Checks a schedule (kind, required fields, no unknown ones) and resolves its base rate: its own
 * lr, else the optimizer's (`baseLr`). Returns the schedule with lr filled in.
 */
export function checkSchedule(schedule: Schedule, baseLr: number | undefined, where = 'schedule'): Schedule {
  checkObject(schedule, where, 'a schedule { kind, ... }');
  const kind = schedule.kind;
  if (!(kind in fields)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: unknown kind ${describe(kind)}; known: ${Object.keys(fields).join(', ')}`);
  }
  const { required, optional } = fields[kind];
  rejectUnknown(schedule, ['kind', ...required, ...optional], `${where} (${kind})`);
  for (const name of required) {
    if ((schedule as unknown as Record<string, unknown>)[name] === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `${where} (${kind}): needs ${required.join(' and ')}; ${name} is missing`);
    }
  }
  if (kind === 'paper') return schedule;
  const lr = schedule.lr ?? baseLr;
  if (lr === undefined) {
    throw new SegvolError('ERR_ARGUMENT', `${where} (${kind}): needs a base rate: give lr here or on the optimizer ({ kind, lr })`);
  }
  if (!(lr >= 0 && Number.isFinite(lr))) throw new SegvolError('ERR_ARGUMENT', `${where} (${kind}): expected lr >= 0, received ${describe(lr)}`);
  if (kind === 'step') {
    positiveNumber(schedule.every, `${where} (step): every`);
    positiveNumber(schedule.factor, `${where} (step): factor`);
  }
  if (kind === 'exponential') positiveNumber(schedule.gamma, `${where} (exponential): gamma`);
  return { ...schedule, lr };
}

/** The rate at an epoch (passes over the data) and step of a phase, for a checked schedule. */
export function learningRate(schedule: Schedule, epochInStage: number, stepInStage = epochInStage): number {
  switch (schedule.kind) {
    case 'paper':
      return 1e-6 + 1e-2 * 0.5 ** (stepInStage / 100);
    case 'constant':
      return checkedRate(schedule.lr);
    case 'step':
      return checkedRate(schedule.lr) * schedule.factor ** Math.floor(epochInStage / schedule.every);
    case 'exponential':
      return checkedRate(schedule.lr) * schedule.gamma ** epochInStage;
    default:
      throw new SegvolError('ERR_ARGUMENT', `schedule: unknown kind ${describe((schedule as { kind: unknown }).kind)}`);
  }
}

function checkedRate(lr: number | undefined): number {
  if (lr === undefined) throw new SegvolError('ERR_ARGUMENT', 'schedule: no base rate; checkSchedule fills it from the optimizer\'s lr');
  return lr;
}
