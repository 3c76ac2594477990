// segvol worker: takes block jobs from a BullMQ queue (segvol predict --queue) and
// writes their chunks until stopped.
import type { Command } from 'commander';
import { peakRssMiB, startBlockWorker } from '../../cluster/blocks';
import type { Device } from '../../core/tensor';
import { deviceOption, integerList, positiveNumber } from '../context';

export function registerWorker(program: Command): void {
  program.command('worker')
    .description('take block jobs from a BullMQ queue (segvol predict --queue) and write their chunks, until stopped (SIGTERM/SIGINT finish the current block)')
    .requiredOption('--queue <redis-url>', 'the Redis the coordinator uses, e.g. redis://host:6379')
    .option('--queue-name <name>', 'the queue\'s name (default segvol-blocks)')
    .option('--concurrency <n>', 'blocks at once (default 1)', (v) => integerList(v)[0]!, 1)
    .option('--lock-seconds <n>', 'a block held this long by a silent worker goes to another one (default 60)', positiveNumber, 60)
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: { queue: string; queueName?: string; concurrency: number; lockSeconds: number; device: Device }) => {
      const w = startBlockWorker({ url: o.queue, ...(o.queueName ? { name: o.queueName } : {}) }, {
        concurrency: o.concurrency, lockSeconds: o.lockSeconds, device: o.device,
        onBlock: (block, out, seconds) => console.log(`block ${block} of ${out} in ${seconds.toFixed(1)} s`),
      });
      console.log(`worker ${process.pid} on ${o.queue} (${o.queueName ?? 'segvol-blocks'})`);
      await new Promise<void>((resolve) => {
        const stop = () => void w.close().then(() => {
          console.log(`worker ${process.pid} stopped; peak RSS ${peakRssMiB().toFixed(0)} MiB`);
          resolve();
        });
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
