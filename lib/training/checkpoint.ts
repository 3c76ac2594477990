// Checkpoints of a fit: the model file (weights readable by PyTorch, architecture
// and info) with the trainer state in its metadata, and the optimizer state in
// `<path>.optimizer`; resuming restores all of it, bit for bit.
import { SegvolError } from '../core/errors';
import type { Random } from '../core/random';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors';
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
}

/** Writes a checkpoint atomically: the optimizer state first, then the model file that names its step. */
export function saveCheckpoint(path: string, model: ModelBase, snapshot: TrainerSnapshot): void {
  const optimizerState = new Map<string, NamedArray>();
  for (const [name, t] of snapshot.optimizer.stateTensors()) optimizerState.set(name, { shape: [...t.shape], data: t.toArray() });
  writeSafetensors(`${path}.optimizer`, optimizerState, { step: String(snapshot.position.step) });
  const state = encodeCheckpointState({
    position: snapshot.position, ...(snapshot.validation ? { validation: snapshot.validation } : {}), random: snapshot.random,
    modelRandom: model.random.getState(),
    optimizer: { config: snapshot.optimizer.config as unknown as CheckpointState['optimizer']['config'], steps: snapshot.optimizer.steps },
  });
  model.saveWeights(path, { ...model.fileMetadata(), segvol: state });
}

/**
 * Restores a checkpoint into the model (weights, dropout generator) and the sampling
 * generator; returns the trainer state and the optimizer to go on with (the given one
 * with its state loaded, or a new one where the checkpoint's update rule differs).
 */
export function loadCheckpoint(path: string, model: ModelBase, random: Random, optimizer: Optimizer): { state: CheckpointState; optimizer: Optimizer } {
  const state = decodeCheckpointState(readSafetensors(path).metadata.segvol, path);
  const saved = readSafetensors(`${path}.optimizer`);
  if (Number(saved.metadata.step) !== state.position.step) {
    throw new SegvolError('ERR_FORMAT', `resume: ${path}.optimizer is from step ${saved.metadata.step}, the weights from step ${state.position.step}`);
  }
  model.loadWeights(path);
  let next = optimizer;
  const config = state.optimizer.config as OptimizerConfig | undefined;
  if (config && !sameUpdateRule(optimizer.config, config)) {
    optimizer.dispose();
    next = new Optimizer(config);
  }
  next.loadState(saved.tensors, state.optimizer.steps);
  random.setState(state.random);
  if (state.modelRandom !== undefined) model.random.setState(state.modelRandom);
  return { state, optimizer: next };
}
