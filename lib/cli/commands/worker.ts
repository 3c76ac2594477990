// segvol worker: takes block jobs from a BullMQ queue (segvol predict --queue) and
// writes their chunks until stopped. Exit codes (docs/cluster.md): 0 stopped by SIGTERM or
// SIGINT, 69 Redis unreachable for --connect-timeout, 1 any other error.
import type { Command } from 'commander';
import { peakRssMiB } from '../../cluster/blocks';
import { redactedUrl } from '../../cluster/redis';
import { startBlockWorker } from '../../cluster/worker';
import type { Device } from '../../core/tensor';
import { deviceOption, nonNegativeSeconds, positiveIntegerOption, positiveNumber } from '../context';
import { EXIT_UNAVAILABLE, exitWith, onStopSignals } from '../signals';

export function registerWorker(program: Command): void {
  program.command('worker')
    .description('take block jobs from a BullMQ queue (segvol predict --queue) and write their chunks, until stopped: SIGTERM or SIGINT ' +
      'finishes the blocks in work, a second one gives them back to the queue (exit code 0); Redis unreachable for --connect-timeout: exit code 69')
    .requiredOption('--queue <redis-url>', 'the Redis the coordinator uses, e.g. redis://host:6379')
    .option('--queue-name <name>', 'the queue\'s name (default segvol-blocks)')
    .option('--concurrency <n>', 'blocks at once', positiveIntegerOption, 1)
    .option('--lock-seconds <n>', 'a block held this long by a silent worker goes to another one', positiveNumber, 60)
    .option('--connect-timeout <seconds>', 'retry an unreachable Redis this long (at the start or mid-run), then exit with code 69; 0: retry forever', nonNegativeSeconds, 30)
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: { queue: string; queueName?: string; concurrency: number; lockSeconds: number; connectTimeout: number; device: Device }) => {
      const say = (line: string) => console.error(`worker ${process.pid}: ${line}`);
      const w = startBlockWorker({ url: o.queue, ...(o.queueName ? { name: o.queueName } : {}) }, {
        concurrency: o.concurrency, lockSeconds: o.lockSeconds, device: o.device, connectTimeout: o.connectTimeout, onNotice: say,
        onBlock: (block, out, seconds) => console.log(`block ${block} of ${out} in ${seconds.toFixed(1)} s`),
      });
      console.log(`worker ${process.pid} on ${redactedUrl(o.queue)} (${o.queueName ?? 'segvol-blocks'})`);
      let signalled: NodeJS.Signals | undefined;
      const off = onStopSignals((signal, count) => {
        if (count === 1) {
          signalled = signal;
          const busy = w.inWork;
          if (busy.length) say(`${signal}: finishing block ${busy.join(', ')}, then stopping (${signal} again gives ${busy.length > 1 ? 'them' : 'it'} back to the queue now)`);
          void w.close();
        } else {
          void w.close({ abandon: true });
        }
      });
      try {
        await w.stopped;
        console.log(`worker ${process.pid} stopped${signalled ? ` (${signalled})` : ''}; peak RSS ${peakRssMiB().toFixed(0)} MiB`);
        exitWith(0);
      } catch (error) {
        say((error as Error).message.replace(/^segvol: /, ''));
        console.log(`worker ${process.pid} stopped; peak RSS ${peakRssMiB().toFixed(0)} MiB`);
        exitWith(EXIT_UNAVAILABLE);
      } finally {
        off();
      }
    });
}
