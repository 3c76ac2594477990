// npm run bench -- eventloop: how long the event loop waits while a fit runs (the heavy
// work is on the compute thread). Target p99 < 50 ms.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { presets, Trainer, VolumeSampler } from '../../lib';
import { round, type Suite } from '../common';

/** p50, p99 and max of the loop's delay over a fit of a small PyraMiD network. */
export const eventloop: Suite = {
  name: 'eventloop',
  async run({ repeats }) {
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [8, 12], fc: [12], kernel: 5, seed: 1 });
    const volume = Float32Array.from({ length: 16 * 64 * 64 }, (_, i) => Math.sin(i * 0.01));
    const data = new VolumeSampler({ volume, shape: [1, 16, 64, 64], labels: volume.map((v) => (v > 0 ? 1 : 0)) });
    const trainer = new Trainer(model, { seed: 1 });
    await trainer.fit({ data, size: [8, 32, 32], steps: 2 });  // warm-up: primitives built
    const steps = Math.max(repeats, 1) * 5;
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const started = Date.now();
    await trainer.fit({ data, size: [8, 32, 32], steps });
    histogram.disable();
    console.log(JSON.stringify({
      case: `event-loop delay while a fit runs (${steps} steps of a small PyraMiD network on 8x32x32)`,
      fit_ms: Date.now() - started, p50_ms: round(histogram.percentile(50) / 1e6, 2),
      p99_ms: round(histogram.percentile(99) / 1e6, 2), max_ms: round(histogram.max / 1e6, 2), samples: histogram.count, target_p99_ms: 50,
    }));
  },
};
