// npm run bench -- memory: predicted and measured memory of the paper network's
// training step at the paper's three bootstrap sizes (test/memory.test.ts runs one
// case small through --case).
import { estimateStepMemory, memoryStats, presets, resetPeakMemory, Trainer, VolumeSampler } from '../../lib';
import { elapsedMs, round, type Suite } from '../common';
import { runCaseInChild } from '../processes';

/**
 * Steps of the paper network in this process: predicted peak, measured peak of live
 * tensor bytes (over the last step), peak RSS, time of the last step.
 */
async function memoryCase(size: [number, number, number], recompute: boolean, steps: number): Promise<void> {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const [d, h, w] = size;
  const volume = Float32Array.from({ length: d * h * w }, (_, i) => Math.sin(i * 0.001));
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels: volume.map((v) => (v > 0 ? 1 : 0)), flip: {} });
  const trainer = new Trainer(model, { memorySchedule: recompute ? { recompute: true } : {} });
  const predicted = estimateStepMemory(model, [1, 1, d, h, w], { schedule: { recompute } })!;
  const times: number[] = [];
  for (let i = 0; i < steps; ++i) {
    if (i === steps - 1) resetPeakMemory('cpu');
    times.push(await elapsedMs(() => trainer.fit({ data, size, steps: 1 })));
  }
  const gib = (b: number) => round(b / 2 ** 30, 3);
  console.log(JSON.stringify({
    case: `paper network training step on ${size.join('x')}, ${recompute ? 'recomputed gates' : 'gates kept'}`,
    predicted_gib: gib(predicted.peakBytes), tensor_peak_gib: gib(memoryStats().cpu.peakBytes), peak_rss_gib: gib(process.resourceUsage().maxRSS * 1024),
    step_ms: round(times[times.length - 1]!, 0), steps,
  }));
}

/**
 * The paper network's training step at the paper's three bootstrap sizes: predicted
 * and measured memory (tensor bytes and the process's peak RSS) and time, with the
 * gates kept and with them recomputed in backward, each case in its own process.
 * 20x256x256 runs recomputed only (kept gates need about 23 GiB: more than this machine
 * has beside the OS). --case d,h,w:recompute runs one case here.
 */
export const memory: Suite = {
  name: 'memory',
  async run({ repeats, has, value }) {
    const one = value('--case');
    if (one !== undefined) {
      const [shape, mode] = one.split(':');
      const size = shape!.split(',').map(Number) as [number, number, number];
      await memoryCase(size, mode === 'recompute', size[2] >= 256 ? 1 : Math.max(2, Math.min(repeats, 3)));
      return;
    }
    const sizes = has('--smoke') ? ['8,16,16'] : ['8,64,64', '15,128,128', '20,256,256'];
    for (const size of sizes) {
      for (const mode of size.endsWith(',256') ? ['recompute'] : ['gates', 'recompute']) {
        const printed = runCaseInChild(`${size} ${mode}`, 'memory', [`${size}:${mode}`, '--repeats', String(repeats)]);
        if (printed !== null) process.stdout.write(printed);
      }
    }
  },
};
