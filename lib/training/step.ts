// One training step, the only one in segvol: the loss function runs on a gradient
// tape (forward and loss), every op output, the loss and the gradients are checked
// for NaN and Inf, backward gives each parameter's gradient, gradients are clipped,
// and the optimizer updates in place. A non-finite value anywhere stops the step
// before any weight changes. The Trainer, the consistent ConvLSTM's regime and the
// benchmarks all call it.
import { GradientTape } from '../autograd/tape';
import { SegvolError } from '../core/errors';
import { Tensor, tidy } from '../core/tensor';
import { positiveNumber, rejectUnknown } from '../core/validate';
import type { ModelBase } from '../nn/model';
import { ops } from '../ops';
import type { Optimizer } from './optimizers';

/** PyTorch's clip_grad_norm_ (maxNorm: the global L2 norm), then clip_grad_value_ (maxValue: each entry). */
export interface GradientClipping {
  maxNorm?: number;
  maxValue?: number;
}

export interface TrainStepOptions {
  /** The learning rate of this update (default: the optimizer's configured lr). */
  lr?: number;
  clipGradients?: GradientClipping;
  /** Check op outputs and gradients for NaN and Inf before updating (default true; the loss is always checked). */
  checkFinite?: boolean;
  /** The error for a non-finite value found in `where` ("the loss", "the gradient of layers.0.weight"). */
  nonFinite?: (where: string) => Error;
  /**
   * Loss scaling (fp16 training): backward starts from this value instead of 1, and the
   * gradients are divided by it before clipping and the update. Gradients with a NaN or
   * Inf then skip the step (result.skipped) instead of failing it: the caller lowers the scale.
   */
  lossScale?: number;
  /** Data-parallel training: how the ranks average gradients (see StepCollective). */
  collective?: StepCollective;
}

/**
 * A step's gradient averaging across ranks. `gradientReady` sees each parameter's final
 * gradient during backward (single-part steps), so averaging can start while backward
 * goes on; `finish` gets every gradient and the loss (summed over the parts) before the
 * checks, clipping and the update, and returns their means over the ranks.
 */
export interface StepCollective {
  gradientReady?(parameter: Tensor, gradient: Tensor): void;
  finish(grads: Map<string, Tensor>, loss: number): Promise<{ grads: Map<string, Tensor>; loss: number }>;
}

export interface StepResult {
  /** The loss before the update. */
  loss: number;
  /** The global L2 norm of the gradients, before clipping (Infinity on a skipped step). */
  gradNorm: number;
  /** With lossScale: the scaled gradients overflowed, and the weights were not updated. */
  skipped?: boolean;
}

/** Checks clipping options (positive numbers, known names). */
export function checkClipping(clip: GradientClipping | undefined, where: string): void {
  if (clip === undefined) return;
  rejectUnknown(clip, ['maxNorm', 'maxValue'], `${where}: clipGradients`);
  for (const [name, v] of Object.entries(clip)) positiveNumber(v, `${where}: clipGradients.${name}`);
}

function defaultNonFinite(where: string): Error {
  return new SegvolError('ERR_NON_FINITE', `training step: a NaN or infinite value appeared in ${where}; the weights were not updated. ` +
    'Check the data for NaN, or lower the learning rate');
}

/**
 * One step: `computeLoss` runs on a tape (it calls the model's forward and a loss, and
 * returns a one-value tensor), then backward, checks, clipping and the update of every
 * parameter of `model` that got a gradient.
 */
export function trainStep(model: ModelBase, optimizer: Optimizer, computeLoss: () => Tensor | Promise<Tensor>,
  options: TrainStepOptions = {}): Promise<StepResult> {
  // Every tensor the step creates (a forward function's intermediates included) is freed when it ends.
  return tidy(() => step(model, optimizer, computeLoss, options));
}

/**
 * One update from several losses whose gradients are summed (gradient accumulation): each part
 * runs on a tape of its own, then backward, and only the sum of their gradients updates the
 * weights, once. Memory holds one part's graph at a time. The step's loss is the parts' sum,
 * so parts scaled to sum to a mean give the mean. Tensors a part creates stay alive until the
 * step ends, so a part can hand values to the next (with no history: see detach-like copies).
 */
export function trainStepAccumulated(model: ModelBase, optimizer: Optimizer, parts: ReadonlyArray<() => Tensor | Promise<Tensor>>,
  options: TrainStepOptions = {}): Promise<StepResult> {
  if (parts.length === 0) return Promise.reject(new SegvolError('ERR_ARGUMENT', 'trainStepAccumulated: expected at least one loss part'));
  return tidy(() => step(model, optimizer, parts, options));
}

async function step(model: ModelBase, optimizer: Optimizer, computeLoss: (() => Tensor | Promise<Tensor>) | ReadonlyArray<() => Tensor | Promise<Tensor>>,
  options: TrainStepOptions): Promise<StepResult> {
  const checkFinite = options.checkFinite ?? true;
  const stop = options.nonFinite ?? defaultNonFinite;
  const parts = typeof computeLoss === 'function' ? [computeLoss] : computeLoss;
  let total = 0;
  let grads: Map<string, Tensor> | undefined;
  try {
    for (const part of parts) {
      const tape = new GradientTape({ checkFinite });
      try {
        const loss = await tape.record(part);
        try {
          const bad = tape.findNonFinite();
          if (bad) throw stop(`the output of ${bad.op}${bad.scope ? ` in ${bad.scope}` : ''}`);
          const value = loss.toArray()[0]!;
          if (!Number.isFinite(value)) throw stop('the loss');
          total += value;
          const seed = options.lossScale === undefined ? undefined
            : Tensor.full(loss.shape, options.lossScale, { device: loss.device });
          const ready = parts.length === 1 ? options.collective?.gradientReady : undefined;
          const partGrads = model.gradientsByName(await tape.backward(loss, seed, ready ? { onLeafGradient: (p, g) => ready(p, g) } : {}));
          seed?.dispose();
          if (!grads) grads = partGrads;
          else {
            for (const [name, g] of partGrads) {
              const sum = grads.get(name);
              grads.set(name, sum ? ops.add(sum, g) : g);
              if (sum) {
                sum.dispose();
                g.dispose();
              }
            }
          }
        } finally {
          loss.dispose();
        }
      } finally {
        tape.dispose();
      }
    }
    if (options.collective) ({ grads, loss: total } = await options.collective.finish(grads!, total));
    if (checkFinite || options.lossScale !== undefined) {
      const names = [...grads!.keys()];
      const i = ops.firstNonFinite(names.map((n) => grads!.get(n)!));
      if (i >= 0 && options.lossScale !== undefined) return { loss: total, gradNorm: Infinity, skipped: true };
      if (i >= 0) throw stop(`the gradient of ${names[i]}`);
    }
    if (options.lossScale !== undefined) {
      const unscale = 1 / options.lossScale;
      for (const [name, g] of grads!) {
        grads!.set(name, ops.scale(g, unscale));
        g.dispose();
      }
    }
    const gradNorm = Math.sqrt(ops.sumOfSquares([...grads!.values()]));
    clipGradients(grads!, gradNorm, options.clipGradients);
    optimizer.step(model.namedParameters(), grads!, options.lr);
    return { loss: total, gradNorm };
  } finally {
    for (const g of grads?.values() ?? []) g.dispose();
  }
}

/** Clips the map's gradients in place (replacing its entries): by the global norm, then by value. */
export function clipGradients(grads: Map<string, Tensor>, norm: number, clip: GradientClipping | undefined): void {
  const { maxNorm, maxValue } = clip ?? {};
  const replace = (f: (g: Tensor) => Tensor) => {
    for (const [name, g] of grads) {
      grads.set(name, f(g));
      g.dispose();
    }
  };
  if (maxNorm !== undefined) {
    const factor = maxNorm / (norm + 1e-6);
    if (factor < 1) replace((g) => ops.scale(g, factor));
  }
  if (maxValue !== undefined) replace((g) => ops.clamp(g, -maxValue, maxValue));
}
