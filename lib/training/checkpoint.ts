// Checkpoints of a fit: the model file (weights readable by PyTorch, architecture
// and info) with the trainer state in its metadata, and the optimizer state in
// `<path>.optimizer`; resuming restores all of it, bit for bit. The two files are
// committed as one unit: the new optimizer state is written beside the old one
// (`<path>.optimizer.pending`), then the model file, then the pending state takes the
// final name. A kill at any instant leaves a model file whose step one of the two
// optimizer files holds, and resume takes that one.
import { SegvolError } from '../core/errors';
import type { Random } from '../core/random';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { readSafetensors, writeSafetensors, type NamedArray, type SafetensorsFile } from '../io/safetensors';
import type { ModelBase } from '../nn/model';
import { decodeCheckpointState, encodeCheckpointState, type CheckpointPosition, type CheckpointState } from '../serialize/checkpoint';
import { Optimizer, sameUpdateRule, type OptimizerConfig } from './optimizers';
import type { ValidationState } from './validation';

/** What a checkpoint holds besides the weights. */
export interface TrainerSnapshot {
  position: CheckpointPosition;
  validation: ValidationState | undefined;
  /** The sampling generator's state (before any batch drawn ahead). */
  random: number;
  optimizer: Optimizer;
  /** Dynamic loss scaling's state, when the trainer scales. */
  lossScaler?: { scale: number; stepsSinceOverflow: number };
}

const pendingOf = (path: string) => `${path}.optimizer.pending`;

/** Whether a process id is alive (a temporary file of a dead one is garbage a kill left). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temporary files of the checkpoint's writes that killed processes left (`.<name>.<pid>.tmp`). */
function removeStaleTemporaries(path: string): void {
  const folder = nodePath.dirname(path);
  const names = new Set([nodePath.basename(path), nodePath.basename(pendingOf(path))]);
  for (const file of fs.readdirSync(folder)) {
    const m = /^\.(.+)\.(\d+)\.tmp$/.exec(file);
    if (m && names.has(m[1]!) && Number(m[2]) !== process.pid && !alive(Number(m[2]))) fs.rmSync(nodePath.join(folder, file), { force: true });
  }
}

/** Writes a checkpoint as one unit (see the top of this file); each file is itself written atomically. */
export function saveCheckpoint(path: string, model: ModelBase, snapshot: TrainerSnapshot): void {
  const optimizerState = new Map<string, NamedArray>();
  for (const [name, t] of snapshot.optimizer.stateTensors()) optimizerState.set(name, { shape: [...t.shape], data: t.toArray() });
  writeSafetensors(pendingOf(path), optimizerState, { step: String(snapshot.position.step) });
  const state = encodeCheckpointState({
    position: snapshot.position, ...(snapshot.validation ? { validation: snapshot.validation } : {}), random: snapshot.random,
    modelRandom: model.random.getState(),
    optimizer: { config: snapshot.optimizer.config as unknown as CheckpointState['optimizer']['config'], steps: snapshot.optimizer.steps },
    ...(snapshot.lossScaler ? { lossScaler: snapshot.lossScaler } : {}),
  });
  model.saveWeights(path, { ...model.fileMetadata(), segvol: state });
  fs.renameSync(pendingOf(path), `${path}.optimizer`);
  removeStaleTemporaries(path);
}

/** The optimizer state of the model file's step: the committed file, or the pending one a kill left before its rename. */
function optimizerStateOf(path: string, step: number, freshOptimizer: boolean): SafetensorsFile | undefined {
  const found: string[] = [];
  for (const file of [`${path}.optimizer`, pendingOf(path)]) {
    if (!fs.existsSync(file)) continue;
    const saved = readSafetensors(file);
    if (Number(saved.metadata.step) === step) return saved;
    found.push(`${file} holds step ${saved.metadata.step}`);
  }
  if (freshOptimizer) return undefined;
  throw new SegvolError('ERR_FORMAT', `resume: the weights in ${path} are from step ${step}, but no optimizer state of that step is beside them ` +
    `(${found.length ? found.join('; ') : `no ${path}.optimizer`}); to go on from these weights with fresh optimizer state, ` +
    'resume with freshOptimizer (segvol train --resume ... --fresh-optimizer)');
}

/**
 * Restores a checkpoint into the model (weights, dropout generator) and the sampling
 * generator; returns the trainer state and the optimizer to go on with (the given one
 * with its state loaded, or a new one where the checkpoint's update rule differs).
 */
export function loadCheckpoint(path: string, model: ModelBase, random: Random, optimizer: Optimizer,
  options: { freshOptimizer?: boolean } = {}): { state: CheckpointState; optimizer: Optimizer } {
  const state = decodeCheckpointState(readSafetensors(path).metadata.segvol, path);
  const saved = optimizerStateOf(path, state.position.step, options.freshOptimizer === true);
  model.loadWeights(path);
  let next = optimizer;
  const config = state.optimizer.config as OptimizerConfig | undefined;
  if (config && !sameUpdateRule(optimizer.config, config)) {
    optimizer.dispose();
    next = new Optimizer(config);
  }
  if (saved) next.loadState(saved.tensors, state.optimizer.steps);
  else {
    // Fresh state: every parameter's moments start at zero, and Adam's bias correction anew.
    next.dispose();
    next.steps = 0;
  }
  random.setState(state.random);
  if (state.modelRandom !== undefined) model.random.setState(state.modelRandom);
  return { state, optimizer: next };
}
