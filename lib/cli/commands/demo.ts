// segvol demo: a family's demo (the default family's unless --model names another):
// trains on synthetic data on the CPU and reports held-out scores.
import { InvalidArgumentError, type Command } from 'commander';
import { families } from '../../models';
import type { Precision } from '../../training/trainer';
import { positiveNumber, precisionOption, terminal } from '../context';

export function registerDemo(program: Command): void {
  const demos = families.flatMap((f) => (f.demo ? [f.demo] : []));
  const [first] = demos;
  program.command('demo')
    .description(`train a network on synthetic data (CPU) and evaluate it: ${demos.map((d, i) => `${d.description}${i === 0 ? ' (default)' : ` (--model ${d.name})`}`).join('; ')}`)
    .option('--model <name>', demos.map((d) => d.name).join(' or '), first!.name)
    .option('--seconds <n>', `training time budget (default ${demos.map((d) => `${d.defaultSeconds} for ${d.name}`).join(', ')})`, positiveNumber)
    .option('--out <dir>', 'output folder (default segvol-demo, or segvol-demo-<model>)')
    .option('--seed <n>', 'random seed', (v) => Number(v), 1)
    .option('--precision <mode>', 'convolution math while training: fp32 (default) or bf16 (mixed precision; needs a CPU with AVX512-BF16)', precisionOption)
    .action(async (o: { model: string; seconds?: number; out?: string; seed: number; precision?: Precision }) => {
      const demo = demos.find((d) => d.name === o.model);
      if (!demo) throw new InvalidArgumentError(`--model: expected ${demos.map((d) => d.name).join(' or ')}, received ${o.model}`);
      await demo.run({ seconds: o.seconds ?? demo.defaultSeconds, seed: o.seed, ...(o.out ? { out: o.out } : {}), ...(o.precision ? { precision: o.precision } : {}) }, terminal);
    });
}
