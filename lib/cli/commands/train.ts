// segvol train: trains a model from a JSON config; Ctrl-C stops after the current
// step and writes the checkpoint.
import type { Command } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { SegvolError } from '../../core/errors';
import type { Device } from '../../core/tensor';
import { withoutExtension } from '../../training/log';
import type { Precision } from '../../training/trainer';
import { readTrainConfig } from '../config';
import { closeDistributedGroup, launcherEnv } from '../../core/distributed';
import { deviceOption, precisionOption, terminal } from '../context';
import { EXIT_UNAVAILABLE, exitWith, onStopSignals } from '../signals';
import { trainFromConfig } from '../train_run';
import { startViewer, type Viewer } from '../viewer/server';

function distributedOption(value: string): 'mpi' | 'none' {
  if (value !== 'mpi' && value !== 'none') throw new InvalidArgumentError(`expected mpi or none, received ${value}`);
  return value;
}

/** What ranks other than 0 print: nothing but errors. */
const quiet = { ...terminal, progress: () => ({ update: () => undefined, done: () => undefined }), print: () => undefined, note: () => undefined };

export function registerTrain(program: Command): void {
  program.command('train')
    .description('train a model from a JSON config; writes a model file (checkpoint), a JSON-lines log beside it, and the best model with validation')
    .requiredOption('--config <file>', 'training configuration (see README)')
    .option('--resume <checkpoint>', 'continue from a checkpoint written by an earlier run')
    .option('--fresh-optimizer', 'with --resume: go on from the checkpoint\'s weights with fresh optimizer state (when its optimizer state is missing)')
    .option('--overwrite', 'replace an existing model file of the config (and its log, optimizer state and best model) instead of refusing')
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .option('--distributed <mode>', "mpi: data-parallel over the ranks mpirun or srun started; none: one process (default: mpi when launched as several ranks)", distributedOption)
    .option('--precision <mode>', "convolution math: fp32 (default), bf16 (mixed precision: cpu with AVX512-BF16, or cuda), fp16 (cuda, loss-scaled) or tf32 (cuda); overrides the config's precision", precisionOption)
    .option('--view', 'follow the training in a local web page (segvol view --log): loss, learning rate, validation and its latest slice')
    .action(async (options: { config: string; resume?: string; freshOptimizer?: boolean; overwrite?: boolean; device: Device; precision?: Precision;
      distributed?: 'mpi' | 'none'; view?: boolean }) => {
      const config = readTrainConfig(options.config);
      if (options.distributed !== undefined) config.distributed = options.distributed;
      const launched = launcherEnv();
      // Each rank says who it is once; the other ranks' progress would repeat rank 0's, so only rank 0 reports.
      if (launched && launched.size > 1 && config.distributed !== 'none') process.stderr.write(`rank ${launched.rank}/${launched.size} (pid ${process.pid}, host ${os.hostname()})\n`);
      const cli = launched && launched.rank > 0 && config.distributed !== 'none' ? quiet : terminal;
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
      let viewer: Viewer | undefined;
      if (options.view && cli === terminal) {
        if (!config.checkpoint) throw new SegvolError('ERR_ARGUMENT', '--view follows the training log written beside the checkpoint; give the config a checkpoint');
        // The log of a fresh run is created at its first step: the viewer waits for it.
        const log = `${withoutExtension(path.resolve(baseDir, config.checkpoint.path))}.log.jsonl`;
        viewer = await startViewer({ layers: [], log });
        console.log(`segvol view: ${viewer.url}`);
      }
      try {
        await trainFromConfig(config, baseDir, {
          device: options.device, signal: controller.signal, ...(options.resume ? { resume: options.resume } : {}),
          ...(options.freshOptimizer ? { freshOptimizer: true } : {}), ...(options.overwrite ? { overwrite: true } : {}),
        }, cli);
        await closeDistributedGroup();  // MPI counts a rank that exits without finalising as failed
        // A run that finished stays on view until Ctrl-C; one stopped by a signal ends now.
        if (viewer && !controller.signal.aborted) {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          console.log(`training done; the viewer stays at ${viewer.url} until Ctrl-C`);
          await new Promise<void>((resolve) => { const off = onStopSignals(() => { off(); resolve(); }); });
        }
      } catch (error) {
        // A lost peer: say so with the code, and exit 69 (unavailable) without waiting on MPI.
        if ((error as { code?: string }).code !== 'ERR_PEER_LOST') throw error;
        console.error(`segvol: [ERR_PEER_LOST] ${(error as Error).message.replace(/^segvol: /, '')}`);
        exitWith(EXIT_UNAVAILABLE);
      } finally {
        // Its server would keep a failed run's process alive.
        await viewer?.close();
      }
    });
}
