// Dynamic loss scaling for fp16 training, as PyTorch's GradScaler does it: the loss's
// gradient is multiplied by a scale before backward, so small gradients stay above
// half precision's smallest values, and the gradients are divided by it before the
// update. A step whose gradients overflow (Inf or NaN) is skipped, weights untouched,
// and the scale halves; after growthInterval steps in a row without overflow it doubles.
import { describe, SegvolError } from '../core/errors';
import { rejectUnknown } from '../core/validate';

export interface LossScalingOptions {
  /** The first scale (default 65536, PyTorch's). */
  initialScale?: number;
  /** Overflow-free steps in a row before the scale doubles (default 2000, PyTorch's). */
  growthInterval?: number;
}

/** What a checkpoint keeps of a scaler, so a resumed run goes on with the same scale. */
export interface LossScalerState {
  scale: number;
  stepsSinceOverflow: number;
}

/** The Trainer's scaler: on by default with fp16, off with false; options turn it on with any precision. */
export function lossScalerFor(option: unknown, precision: string | undefined): LossScaler | undefined {
  const scaling = option ?? (precision === 'fp16' ? {} : false);
  if (scaling === false) return undefined;
  if (scaling === null || typeof scaling !== 'object') {
    throw new SegvolError('ERR_ARGUMENT', `Trainer: lossScaling: expected options ({ initialScale, growthInterval }) or false, received ${describe(scaling)}`);
  }
  return new LossScaler(scaling as LossScalingOptions);
}

export class LossScaler {
  scale: number;
  stepsSinceOverflow = 0;
  /** Steps skipped for overflowing gradients, in this process. */
  skipped = 0;
  private readonly growthInterval: number;

  constructor(options: LossScalingOptions = {}) {
    rejectUnknown(options, ['initialScale', 'growthInterval'], 'Trainer: lossScaling');
    const { initialScale = 65536, growthInterval = 2000 } = options;
    if (typeof initialScale !== 'number' || !Number.isFinite(initialScale) || initialScale <= 0) {
      throw new SegvolError('ERR_ARGUMENT', `Trainer: lossScaling.initialScale: expected a positive finite number, received ${describe(initialScale)}`);
    }
    if (!Number.isInteger(growthInterval) || growthInterval < 1) {
      throw new SegvolError('ERR_ARGUMENT', `Trainer: lossScaling.growthInterval: expected a positive integer, received ${describe(growthInterval)}`);
    }
    this.scale = initialScale;
    this.growthInterval = growthInterval;
  }

  /** After a step: its progress report gets the scale it ran with, and the scale moves on. */
  after(progress: { lossScale?: number; skipped?: boolean }, skipped: boolean): void {
    progress.lossScale = this.scale;
    progress.skipped = skipped;
    this.update(skipped);
  }

  /** After a step: overflowed (skipped) or not. */
  update(overflowed: boolean): void {
    if (overflowed) {
      this.scale /= 2;
      this.stepsSinceOverflow = 0;
      this.skipped += 1;
      return;
    }
    this.stepsSinceOverflow += 1;
    if (this.stepsSinceOverflow >= this.growthInterval) {
      this.scale *= 2;
      this.stepsSinceOverflow = 0;
    }
  }

  get state(): LossScalerState {
    return { scale: this.scale, stepsSinceOverflow: this.stepsSinceOverflow };
  }

  set state(state: LossScalerState) {
    this.scale = state.scale;
    this.stepsSinceOverflow = state.stepsSinceOverflow;
  }
}
