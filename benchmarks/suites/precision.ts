// npm run bench -- precision [--steps N] [--seed S]: the demo (synthetic EM, the small
// PyraMiD-LSTM network, RMSprop with momentum, the paper's schedule) trained for the
// same N steps (default 300) on the same windows in float32 and in bf16 mixed
// precision, each in a fresh process; prints the loss at the end (the last step's and
// the mean of the last 20), the held-out pixel error and the training time of each,
// and the differences the targets are stated in (loss within 3%, pixel error
// within 0.5 points).
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, type DemoResult } from '../../lib/models/pyramid';
import { round, type BenchArgs, type Suite } from '../common';
import { lastJsonLine, runCaseInChild } from '../processes';

interface RunMeasurement {
  precision: 'fp32' | 'bf16';
  steps: number;
  seconds: number;
  lastLoss: number;
  meanLossLast20: number;
  pixelError: number;
}

async function oneRun(precision: 'fp32' | 'bf16', steps: number, seed: number): Promise<void> {
  const started = Date.now();
  const r: DemoResult = await runDemo({ steps, seed, precision, out: path.join(os.tmpdir(), `segvol-bench-precision-${precision}`) });
  const out: RunMeasurement = {
    precision, steps: r.steps, seconds: round((Date.now() - started) / 1000, 1),
    lastLoss: r.lastLoss, meanLossLast20: r.meanLossLast20, pixelError: r.pixelError,
  };
  console.log(JSON.stringify(out));
}

export const precision: Suite = {
  name: 'precision',
  async run({ value }: BenchArgs) {
    const steps = Number(value('--steps') ?? 300);
    const seed = Number(value('--seed') ?? 1);
    const one = value('--case');
    if (one === 'fp32' || one === 'bf16') {
      await oneRun(one, steps, seed);
      return;
    }
    const runs = (['fp32', 'bf16'] as const).map((p) => {
      const printed = runCaseInChild(`demo ${p}`, 'precision', [p, '--steps', String(steps), '--seed', String(seed)]);
      return printed === null ? null : lastJsonLine<RunMeasurement>(printed);
    });
    const [fp32, bf16] = runs;
    for (const r of runs) if (r) console.log(JSON.stringify({ case: `demo, ${steps} steps, ${r.precision}`, ...r }));
    if (!fp32 || !bf16) return;
    console.log(JSON.stringify({
      case: `demo, ${steps} steps: bf16 against fp32`,
      loss_change_percent: round((100 * (bf16.lastLoss - fp32.lastLoss)) / fp32.lastLoss, 2),
      mean_loss_last20_change_percent: round((100 * (bf16.meanLossLast20 - fp32.meanLossLast20)) / fp32.meanLossLast20, 2),
      pixel_error_points: round(100 * (bf16.pixelError - fp32.pixelError), 2),
      speedup: round(fp32.seconds / bf16.seconds, 2),
    }));
  },
};
