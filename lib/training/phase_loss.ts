// A phase's loss on the tape: one configured loss (with class weights computed from
// the batch or, once, from all the data), a weighted sum of losses on named outputs,
// or the user's function. A loss compares with the labels as class ids, or with
// targets computed from them (affinities).
import { describe, SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { classStatistics, type DataSource } from '../data/samplers';
import { lossKinds, ops, targetLossKinds, type LossKind, type TargetLossKind } from '../ops';
import type { Batch } from './batch';
import { classWeightsFromCounts, classWeightsFromStatistics, computedWeightings, type ComputedWeighting } from './losses';
import type { LossConfig, LossSpec } from './options';
import { targetKinds } from './targets';

/** Checks one configured loss: its kind against its targets, and the options computed targets take. */
function checkLossConfig(c: LossConfig, where: string): void {
  const targets = c.targets ?? 'classes';
  if (!targetKinds.includes(targets)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected loss targets ${targetKinds.map((k) => `'${k}'`).join(' or ')}, received ${describe(c.targets)}`);
  }
  if (targets === 'classes') {
    if (!lossKinds.includes(c.kind as LossKind)) {
      const hint = targetLossKinds.includes(c.kind as TargetLossKind) ? `; ${c.kind} compares with float targets: add targets: 'affinities'` : '';
      throw new SegvolError('ERR_ARGUMENT', `${where}: expected loss ${lossKinds.join(', ')}, received ${describe(c.kind)}${hint}`);
    }
    return;
  }
  if (!targetLossKinds.includes(c.kind as TargetLossKind)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: a loss on ${targets} takes kind ${targetLossKinds.map((k) => `'${k}'`).join(' or ')}, received ${describe(c.kind)}`);
  }
  if (c.input !== undefined && c.input !== 'probabilities') {
    throw new SegvolError('ERR_ARGUMENT', `${where}: a loss on ${targets} takes the network's values in [0, 1] (a sigmoid's output), not input ${describe(c.input)}`);
  }
  if (c.weightsFrom === 'global') {
    throw new SegvolError('ERR_ARGUMENT', `${where}: class weights of ${targets} come from each batch (weightsFrom 'patch'), not 'global'`);
  }
  const w = c.classWeights;
  if (w === 'medianFrequency') {
    throw new SegvolError('ERR_ARGUMENT', `${where}: classWeights 'medianFrequency' needs class labels per 2D image; for ${targets} use 'inverseFrequency', 'medianCount' or [w0, w1]`);
  }
  if (Array.isArray(w) && w.length !== 2) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected 2 class weights for ${targets} (affinity 0, affinity 1), received ${w.length}`);
  }
}

/** The configured losses of a spec (undefined for a function), each kind checked. */
export function lossConfigs(spec: LossSpec, where = 'Trainer'): LossConfig[] | undefined {
  if (typeof spec === 'function') return undefined;
  const list = typeof spec === 'string' ? [{ kind: spec }] : Array.isArray(spec) ? [...spec as readonly LossConfig[]] : [spec as LossConfig];
  for (const c of list) {
    if (c === null || typeof c !== 'object') throw new SegvolError('ERR_ARGUMENT', `${where}: expected a loss kind or { kind, ... }, received ${describe(c)}`);
    checkLossConfig(c, where);
  }
  return list;
}

/** Whether a spec needs every output of the model (a function, or a loss on a named output). */
export function needsAllOutputs(spec: LossSpec): boolean {
  return typeof spec === 'function' || (lossConfigs(spec) ?? []).some((c) => c.output !== undefined);
}

// Class weights computed from all of a data source's labels, once per source (sources do not change).
const globalWeights = new WeakMap<DataSource, Map<string, Float32Array>>();

/** Computes a loss spec for batches of one data source. */
export class PhaseLoss {
  constructor(readonly spec: LossSpec, private readonly data: DataSource, private readonly outputNames: readonly string[]) {
    lossConfigs(spec);
  }

  /** The loss of the model's outputs on a batch, as a one-value tensor (taped when a tape records). */
  async of(outputs: Readonly<Record<string, Tensor>>, batch: Batch): Promise<Tensor> {
    if (typeof this.spec === 'function') {
      const value = await this.spec(outputs, batch);
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new SegvolError('ERR_ARGUMENT', `loss function: expected a one-value Tensor, received ${value instanceof Tensor ? `(${value.shape.join(', ')})` : describe(value)}`);
      }
      return value;
    }
    const terms: Tensor[] = [];
    for (const config of lossConfigs(this.spec)!) {
      const name = config.output ?? this.outputNames[0]!;
      const out = outputs[name];
      if (!out) throw new SegvolError('ERR_ARGUMENT', `loss: the model has no output '${name}'; its outputs: ${this.outputNames.join(', ')}`);
      if ((config.targets ?? 'classes') !== 'classes') {
        terms.push(this.targetTerm(config, out, batch));
        continue;
      }
      const labels = batch.labels(out);
      const mask = batch.mask(out);
      const weights = this.classWeights(config, batch.labelValues(out.shape.slice(2)), mask?.toArray(), out.shape[1]!,
        out.shape[out.shape.length - 1]! * out.shape[out.shape.length - 2]!);
      const classWeights = weights ? Tensor.fromArray(weights, [weights.length], { device: out.device }) : undefined;
      try {
        const term = ops.loss(out, labels, {
          kind: config.kind as LossKind, ...(config.input ? { input: config.input } : {}), ...(mask ? { mask } : {}), ...(classWeights ? { classWeights } : {}),
          ...(config.normalize ? { normalize: config.normalize } : {}),
        });
        terms.push(config.weight === undefined || config.weight === 1 ? term : ops.scale(term, config.weight));
      } finally {
        classWeights?.dispose();
      }
    }
    return terms.length === 1 ? terms[0]! : ops.sum(terms);
  }

  /** Whether every configured loss compares with class ids (what segmentation measures score); undefined for a function. */
  get comparesClasses(): boolean | undefined {
    const configs = lossConfigs(this.spec);
    return configs && configs.every((c) => (c.targets ?? 'classes') === 'classes');
  }

  /** One loss against targets computed from the labels (affinities), weighted by their classes when asked. */
  private targetTerm(config: LossConfig, out: Tensor, batch: Batch): Tensor {
    const { values, mask } = batch.targets(out, config.targets as 'affinities');
    const weights = this.targetWeights(config, values.toArray(), mask?.toArray());
    const w = weights ? Tensor.fromArray(weights, out.shape, { device: out.device }) : undefined;
    try {
      const term = ops.targetLoss(out, values, {
        kind: config.kind as TargetLossKind, ...(mask ? { mask } : {}), ...(w ? { weights: w } : {}), ...(config.normalize ? { normalize: config.normalize } : {}),
      });
      return config.weight === undefined || config.weight === 1 ? term : ops.scale(term, config.weight);
    } finally {
      w?.dispose();
    }
  }

  /** Per-entry weights from the weights of targets 0 and 1 (given, or computed from the batch's counts). */
  private targetWeights(config: LossConfig, targets: Float32Array, mask: Float32Array | undefined): Float32Array | undefined {
    const w = config.classWeights;
    if (w === undefined || w === 'none') return undefined;
    const high = (i: number) => (targets[i]! >= 0.5 ? 1 : 0);
    let perClass: ArrayLike<number>;
    if (Array.isArray(w)) {
      perClass = w as number[];
    } else {
      if (!computedWeightings.includes(w as ComputedWeighting)) {
        throw new SegvolError('ERR_ARGUMENT', `loss: expected classWeights 'none', 'inverseFrequency', 'medianCount' or [w0, w1], received ${describe(w)}`);
      }
      const counts = [0, 0];
      for (let i = 0; i < targets.length; ++i) if (!mask || mask[i] !== 0) counts[high(i)]! += 1;
      perClass = classWeightsFromCounts(counts, w as ComputedWeighting);
    }
    return Float32Array.from({ length: targets.length }, (_, i) => perClass[high(i)]!);
  }

  private classWeights(config: LossConfig, labels: Float32Array, mask: Float32Array | undefined, classes: number, plane: number): Float32Array | undefined {
    const w = config.classWeights;
    if (w === undefined || w === 'none') return undefined;
    if (Array.isArray(w)) {
      if (w.length !== classes) throw new SegvolError('ERR_ARGUMENT', `loss: expected ${classes} class weights (one per class), received ${w.length}`);
      return Float32Array.from(w as number[]);
    }
    const mode = w as ComputedWeighting;
    if (!computedWeightings.includes(mode)) {
      throw new SegvolError('ERR_ARGUMENT', `loss: expected classWeights 'none', ${computedWeightings.map((k) => `'${k}'`).join(', ')} or numbers, received ${describe(w)}`);
    }
    const global = (config.weightsFrom ?? 'global') === 'global';
    if (global && mode === 'medianFrequency' && this.data.classStatistics) {
      return this.cached(mode, classes, () => classWeightsFromStatistics(this.data.classStatistics!(classes), mode));
    }
    if (global && mode !== 'medianFrequency' && this.data.classCounts) {
      return this.cached(mode, classes, () => classWeightsFromCounts(this.data.classCounts!(classes), mode));
    }
    // From the window's own labels: images are its slices of plane h*w.
    return classWeightsFromStatistics(classStatistics(labels, plane, classes, mask), mode);
  }

  private cached(mode: string, classes: number, compute: () => Float32Array): Float32Array {
    let cache = globalWeights.get(this.data);
    if (!cache) globalWeights.set(this.data, (cache = new Map()));
    const key = `${mode}:${classes}`;
    if (!cache.has(key)) cache.set(key, compute());
    return cache.get(key)!;
  }
}
