// Drawing a step's batch of windows: each from the phase's data, redrawn until the
// phase's filter accepts its labels; the next batch is drawn ahead on the main
// thread while a step computes, and handed back to the generator when unused, so the
// sequence of draws (and a checkpoint's state) never depends on that.
import { SegvolError } from '../core/errors';
import type { Random } from '../core/random';
import type { SampledWindow } from '../data/samplers';
import { cropWindow } from './batch';
import type { Plan } from './plan';

export class WindowDrawer {
  private prefetched: { phase: number; windows: SampledWindow[]; stateBefore: number } | undefined;

  constructor(private readonly random: Random) {}

  /** The generator's state as a checkpoint must record it: before any batch drawn ahead. */
  get state(): number {
    return this.prefetched?.stateBefore ?? this.random.getState();
  }

  /** The batch for a step of this plan: the one drawn ahead for it, or a new one. */
  take(plan: Plan): SampledWindow[] {
    if (this.prefetched && this.prefetched.phase === plan.index) {
      const { windows } = this.prefetched;
      this.prefetched = undefined;
      return windows;
    }
    this.drop();
    return this.draw(plan);
  }

  /** Draws the batch of the next step ahead (an error surfaces when that step draws for itself). */
  prefetch(next: Plan): void {
    const stateBefore = this.random.getState();
    try {
      this.prefetched = { phase: next.index, windows: this.draw(next), stateBefore };
    } catch {
      this.random.setState(stateBefore);
    }
  }

  /** Returns a drawn-ahead batch's draws to the generator, so the next draw (or a checkpoint) sees the same sequence. */
  drop(): void {
    if (!this.prefetched) return;
    this.random.setState(this.prefetched.stateBefore);
    this.prefetched = undefined;
  }

  /** One batch of windows for a phase, each passing its filter. */
  private draw(plan: Plan): SampledWindow[] {
    const out: SampledWindow[] = [];
    for (let b = 0; b < plan.batchSize; ++b) {
      let window = plan.data.sample(this.random, plan.size);
      if (plan.filter) {
        const offset = plan.outputSize.map((s, a) => Math.floor((plan.size[a]! - s) / 2));
        const accepts = (w: SampledWindow) => plan.filter!({
          labels: cropWindow(w.labels, 1, plan.size, offset, plan.outputSize),
          ...(w.mask ? { mask: cropWindow(w.mask, 1, plan.size, offset, plan.outputSize) } : {}),
          size: plan.outputSize,
        });
        let tries = 1;
        while (!accepts(window)) {
          if (tries++ >= plan.filterTries) {
            throw new SegvolError('ERR_ARGUMENT', `fit: ${plan.name}: no window of (${plan.size.join(', ')}) passed the filter in ${plan.filterTries} draws; ` +
              'loosen the filter, raise filterTries, or check that the data holds what the filter looks for');
          }
          window = plan.data.sample(this.random, plan.size);
        }
      }
      out.push(window);
    }
    return out;
  }
}
