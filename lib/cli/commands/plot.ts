// segvol plot: a training log (the .log.jsonl beside a checkpoint) drawn as a PNG.
import type { Command } from 'commander';
import { plotLog } from '../plot';

export function registerPlot(program: Command): void {
  program.command('plot')
    .description('draw a training log (the .log.jsonl beside a checkpoint) as a PNG: loss, learning rate and validation against the step')
    .argument('<log>', 'training log (JSON lines)')
    .requiredOption('--out <file>', 'PNG to write')
    .action((log: string, o: { out: string }) => {
      const r = plotLog(log, o.out);
      console.log(`wrote ${o.out} (${r.steps} steps${r.validations ? `, ${r.validations} validations` : ''})`);
    });
}
