// segvol train: trains a model from a JSON config; Ctrl-C stops after the current
// step and writes the checkpoint.
import type { Command } from 'commander';
import * as path from 'node:path';
import type { Device } from '../../core/tensor';
import { readTrainConfig } from '../config';
import { deviceOption, terminal } from '../context';
import { trainFromConfig } from '../train_run';

export function registerTrain(program: Command): void {
  program.command('train')
    .description('train a model from a JSON config; writes a model file (checkpoint), a JSON-lines log beside it, and the best model with validation')
    .requiredOption('--config <file>', 'training configuration (see README)')
    .option('--resume <checkpoint>', 'continue from a checkpoint written by an earlier run')
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (options: { config: string; resume?: string; device: Device }) => {
      const config = readTrainConfig(options.config);
      const baseDir = path.dirname(path.resolve(options.config));  // paths in the config are relative to it
      const controller = new AbortController();
      process.once('SIGINT', () => {
        process.stderr.write('\nstopping after the current step and writing the checkpoint (Ctrl-C again to kill)\n');
        controller.abort();
      });
      await trainFromConfig(config, baseDir, { device: options.device, signal: controller.signal, ...(options.resume ? { resume: options.resume } : {}) }, terminal);
    });
}
