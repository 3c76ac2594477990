// segvol train: trains a model from a JSON config; Ctrl-C stops after the current
// step and writes the checkpoint.
import type { Command } from 'commander';
import * as path from 'node:path';
import type { Device } from '../../core/tensor';
import type { Precision } from '../../training/trainer';
import { readTrainConfig } from '../config';
import { deviceOption, precisionOption, terminal } from '../context';
import { trainFromConfig } from '../train_run';

export function registerTrain(program: Command): void {
  program.command('train')
    .description('train a model from a JSON config; writes a model file (checkpoint), a JSON-lines log beside it, and the best model with validation')
    .requiredOption('--config <file>', 'training configuration (see README)')
    .option('--resume <checkpoint>', 'continue from a checkpoint written by an earlier run')
    .option('--fresh-optimizer', 'with --resume: go on from the checkpoint\'s weights with fresh optimizer state (when its optimizer state is missing)')
    .option('--overwrite', 'replace an existing model file of the config (and its log, optimizer state and best model) instead of refusing')
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .option('--precision <mode>', "convolution math: fp32 (default), bf16 (mixed precision: cpu with AVX512-BF16, or cuda), fp16 (cuda, loss-scaled) or tf32 (cuda); overrides the config's precision", precisionOption)
    .action(async (options: { config: string; resume?: string; freshOptimizer?: boolean; overwrite?: boolean; device: Device; precision?: Precision }) => {
      const config = readTrainConfig(options.config);
      const baseDir = path.dirname(path.resolve(options.config));  // paths in the config are relative to it
      const controller = new AbortController();
      // SIGINT (Ctrl-C) and SIGTERM (what Slurm and Kubernetes send before preempting) both stop after
      // the current step with its checkpoint written, and exit 0; a second signal stops at once.
      const stop = (signal: NodeJS.Signals) => {
        if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
        process.stderr.write(`\n${signal}: stopping after the current step and writing the checkpoint (${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to stop at once)\n`);
        controller.abort();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      if (options.precision !== undefined) config.precision = options.precision;
      await trainFromConfig(config, baseDir, {
        device: options.device, signal: controller.signal, ...(options.resume ? { resume: options.resume } : {}),
        ...(options.freshOptimizer ? { freshOptimizer: true } : {}), ...(options.overwrite ? { overwrite: true } : {}),
      }, terminal);
    });
}
