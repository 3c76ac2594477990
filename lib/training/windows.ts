// Drawing a step's batch of windows: each from the phase's data, redrawn until the
// phase's filter accepts its labels; the next batch is drawn ahead on the main
// thread while a step computes, and handed back to the generator when unused, so the
// sequence of draws (and a checkpoint's state) never depends on that.
// Two ways to seed the draws: 'stream' (the default) draws every window from one
// generator in turn; 'indexed' draws window g of step s from Random.derived(seed, s, g),
// so data-parallel ranks each draw their share of a batch and together draw the windows
// one process at the whole batch would.
import { SegvolError } from '../core/errors';
import { Random } from '../core/random';
import type { SampledWindow } from '../data/samplers';
import { cropWindow } from './batch';
import type { Plan } from './plan';

/** Indexed seeding: rank r of `ranks` draws windows r*b..(r+1)*b-1 of each batch of ranks*b. */
export interface IndexedWindows {
  seed: number;
  rank: number;
  ranks: number;
}

export class WindowDrawer {
  private prefetched: { phase: number; step: number; windows: SampledWindow[]; stateBefore: number } | undefined;
  indexed: IndexedWindows | undefined;

  constructor(private readonly random: Random, indexed?: IndexedWindows) {
    this.indexed = indexed;
  }

  /** The generator's state as a checkpoint must record it: before any batch drawn ahead. */
  get state(): number {
    return this.prefetched?.stateBefore ?? this.random.getState();
  }

  /** The batch for step `step` (0-based, of the whole run) of this plan: the one drawn ahead for it, or a new one. */
  take(plan: Plan, step: number): SampledWindow[] {
    if (this.prefetched && this.prefetched.phase === plan.index && this.prefetched.step === step) {
      const { windows } = this.prefetched;
      this.prefetched = undefined;
      return windows;
    }
    this.drop();
    return this.draw(plan, step);
  }

  /** Draws the batch of the next step ahead (an error surfaces when that step draws for itself). */
  prefetch(next: Plan, step: number): void {
    const stateBefore = this.random.getState();
    try {
      this.prefetched = { phase: next.index, step, windows: this.draw(next, step), stateBefore };
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
  private draw(plan: Plan, step: number): SampledWindow[] {
    const out: SampledWindow[] = [];
    const count = this.indexed ? plan.batchSize / this.indexed.ranks : plan.batchSize;
    const first = this.indexed ? this.indexed.rank * count : 0;
    for (let b = first; b < first + count; ++b) {
      const random = this.indexed ? Random.derived(this.indexed.seed, step, b) : this.random;
      let window = plan.data.sample(random, plan.size);
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
          window = plan.data.sample(random, plan.size);
        }
      }
      out.push(window);
    }
    return out;
  }
}
