// A fit's phases resolved against the fit's and the trainer's settings, each
// field checked, before the first step: window, steps, batch, loss, optimizer,
// schedule, data (and how its inputs map to the model's), filter, memory schedule.
import { SegvolError } from '../core/errors';
import { positiveInteger, rejectUnknown, size3 } from '../core/validate';
import type { DataSource, Size3 } from '../data/samplers';
import type { MemorySchedule } from '../nn/layer';
import type { ModelBase } from '../nn/model';
import { availableBudget, estimateStepMemory, formatBytes, planMemory, type MemoryBudget, type StepMemory } from './memory';
import { checkOptimizerConfig, type OptimizerConfig } from './optimizers';
import { phaseKeys, type FitOptions, type LossSpec, type Phase, type TrainerOptions, type WindowFilter } from './options';
import { PhaseLoss } from './phase_loss';
import { checkSchedule, type Schedule } from './schedules';

/** A phase with every field resolved. */
export interface Plan {
  index: number;
  name: string;
  size: Size3;
  steps: number;
  stepsPerEpoch: number;
  batchSize: number;
  loss: PhaseLoss;
  optimizer: OptimizerConfig;
  schedule: Schedule;
  data: DataSource;
  names: Map<string, string>;
  filter: WindowFilter | undefined;
  filterTries: number;
  outputSize: number[];
  /** How the forward pass trades memory for time, and the predicted peak (when the model's memory can be predicted). */
  memory: MemorySchedule;
  memoryEstimate: (StepMemory & { budget: MemoryBudget }) | undefined;
}

/** The trainer's resolved defaults a plan falls back to. */
export interface PlanDefaults {
  loss: LossSpec;
  optimizer: OptimizerConfig;
  options: TrainerOptions;
  /** The memory a step may take: given (option, environment), or undefined for what is available then. */
  budget: MemoryBudget | undefined;
}

/** The trainer's default schedule: the options', else the optimizer's constant lr, else the paper's. */
function scheduleFor(defaults: PlanDefaults, optimizer: OptimizerConfig): Schedule {
  if (defaults.options.schedule) return defaults.options.schedule;
  if (optimizer.lr !== undefined) return { kind: 'constant', lr: optimizer.lr };
  return { kind: 'paper' };
}

/** Maps each model input to a data input: by name, or the only one to the only one. */
export function inputNames(model: ModelBase, data: DataSource, where: string): Map<string, string> {
  const modelInputs = Object.entries(model.inputs);
  const dataInputs = Object.entries(data.inputs);
  const describeInputs = (e: Array<[string, number]>) => e.map(([n, c]) => `${n} (${c} channel${c === 1 ? '' : 's'})`).join(', ');
  const names = new Map<string, string>();
  if (modelInputs.length === 1 && dataInputs.length === 1) {
    names.set(modelInputs[0]![0], dataInputs[0]![0]);
  } else {
    for (const [name] of modelInputs) {
      if (!(name in data.inputs)) {
        throw new SegvolError('ERR_SHAPE', `${where}: the model reads ${describeInputs(modelInputs)}, the data has ${describeInputs(dataInputs)}; ` +
          'name the data inputs like the model inputs');
      }
      names.set(name, name);
    }
  }
  for (const [modelName, dataName] of names) {
    if (model.inputs[modelName] !== data.inputs[dataName]) {
      throw new SegvolError('ERR_SHAPE', `${where}: the data has ${data.inputs[dataName]} channels for input '${dataName}', the model expects ` +
        `${model.inputs[modelName]}${modelInputs.length === 1 ? '' : ` for '${modelName}'`}`);
    }
  }
  return names;
}

/** The input window of a phase: its size, or its output size plus the dense network's field of view minus one. */
function windowOf(model: ModelBase, phase: Phase, options: FitOptions, where: string): Size3 {
  const outputSize = phase.outputSize ?? (phase.size ? undefined : options.outputSize);
  if (outputSize === undefined) return size3(phase.size ?? options.size ?? [8, 64, 64], `${where}: size`);
  const out = size3(outputSize, `${where}: outputSize`);
  const fov = model.fieldOfView();
  if (!fov || fov.length !== 3) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: outputSize needs a dense 3D network (stride 1 throughout); give size, the input window`);
  }
  return [out[0] + fov[0]! - 1, out[1] + fov[1]! - 1, out[2] + fov[2]! - 1];
}

/**
 * A step's predicted memory and the schedule it runs with: the fastest that fits the budget
 * (given, or the memory available now), or the fixed schedule given instead, refused with
 * ERR_MEMORY when it cannot fit what is available. Undefined for models the estimate cannot follow.
 */
function planStep(model: ModelBase, inputShape: number[], defaults: PlanDefaults): (StepMemory & { budget: MemoryBudget }) | undefined {
  const fixed = defaults.options.memorySchedule;
  const budget = defaults.budget ?? availableBudget(model.device);
  const name = budget.source === 'available' ? `the memory available now (${formatBytes(budget.bytes)}; set memoryBudget to plan for another amount)`
    : budget.source === 'environment' ? `the memory budget of ${formatBytes(budget.bytes)} (SEGVOL_MEMORY_BUDGET)` : `the memory budget of ${formatBytes(budget.bytes)}`;
  if (fixed && budget.source === 'available') {
    const estimate = estimateStepMemory(model, inputShape, { schedule: fixed });
    if (estimate && estimate.peakBytes > budget.bytes) {
      throw new SegvolError('ERR_MEMORY', `a training step on ${inputShape.slice(2).join('x')} with the given memorySchedule needs about ` +
        `${formatBytes(estimate.peakBytes)}, over ${name}; use a smaller window, or leave memorySchedule out to have the leanest schedule chosen`);
    }
    return estimate && { ...estimate, budget };
  }
  const planned = planMemory(model, inputShape, budget.bytes, model.device, name);
  return planned && { ...planned, budget };
}

/** Resolves each phase of a fit, checking everything before any step. */
export function resolvePlans(model: ModelBase, options: FitOptions, defaults: PlanDefaults): Plan[] {
  const phases: readonly Phase[] = options.phases ?? [{}];
  if (!Array.isArray(phases) || phases.length === 0) throw new SegvolError('ERR_ARGUMENT', 'fit: expected at least one phase');
  return phases.map((phase, index) => {
    const where = phases.length > 1 || options.phases ? `fit: phase ${index + 1}${phase.name ? ` (${phase.name})` : ''}` : 'fit';
    rejectUnknown(phase, phaseKeys, where);
    const data = phase.data ?? options.data;
    if (!data || typeof data.sample !== 'function' || typeof data.inputs !== 'object') {
      throw new SegvolError('ERR_ARGUMENT', `${where}: expected data, a DataSource (VolumeSampler, MultiSampler, ...)`);
    }
    const names = inputNames(model, data, where);
    const size = windowOf(model, phase, options, where);
    const window = model.outputWindow(size);
    const batchSize = positiveInteger(phase.batchSize ?? options.batchSize ?? 1, `${where}: batchSize`);
    // An epoch is a pass over the data: as many steps as fill its voxels with output windows.
    const outputVoxels = window.size.reduce((a, b) => a * b, 1) * batchSize;
    const pass = data.voxels !== undefined ? Math.max(1, Math.ceil(data.voxels / outputVoxels)) : 1;
    const stepsPerEpoch = positiveInteger(phase.stepsPerEpoch ?? options.stepsPerEpoch ?? pass, `${where}: stepsPerEpoch`);
    let steps: number;
    if (phase.steps !== undefined || (phase.epochs === undefined && options.steps !== undefined && options.phases === undefined)) {
      steps = positiveInteger(phase.steps ?? options.steps, `${where}: steps`, true);
    } else {
      steps = stepsPerEpoch * positiveInteger(phase.epochs ?? (options.phases ? undefined : options.epochs) ?? 1, `${where}: epochs`, true);
    }
    const optimizer = phase.optimizer ?? defaults.optimizer;
    checkOptimizerConfig(optimizer);
    let schedule = phase.schedule ?? (phase.lr !== undefined ? { kind: 'constant', lr: phase.lr } as const : undefined);
    schedule ??= phase.optimizer?.lr !== undefined ? { kind: 'constant', lr: phase.optimizer.lr } : scheduleFor(defaults, optimizer);
    schedule = checkSchedule(schedule, optimizer.lr, `${where}: schedule`);
    if (phase.filter !== undefined && typeof phase.filter !== 'function') {
      throw new SegvolError('ERR_ARGUMENT', `${where}: expected filter as a function of the window's labels (see containsClass)`);
    }
    const inputShape = [batchSize, model.inChannels, ...size];
    const memoryEstimate = planStep(model, inputShape, defaults);
    return {
      index, name: phase.name ?? `phase ${index + 1}`, size, steps, stepsPerEpoch, batchSize,
      memory: memoryEstimate?.schedule ?? defaults.options.memorySchedule ?? {}, memoryEstimate,
      loss: new PhaseLoss(phase.loss ?? defaults.loss, data, model.outputNames), optimizer, schedule, data, names, filter: phase.filter,
      filterTries: positiveInteger(phase.filterTries ?? 100, `${where}: filterTries`), outputSize: window.size,
    };
  });
}
