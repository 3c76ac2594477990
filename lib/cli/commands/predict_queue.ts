// segvol predict --queue: the coordinator. It checks that Redis answers, plans the output,
// puts the blocks not yet written on the queue and follows the workers until every block
// is written. Exit codes (docs/cluster.md): 0 all written; 130 (SIGINT) or 143 (SIGTERM)
// stopped by a signal, the queued jobs left on the queue for the workers; 69 Redis
// unreachable for --connect-timeout; 1 any other error (a block failed after its retries).
import { enqueueBlocks, queueName, waitForBlocks } from '../../cluster/blocks';
import { QueueStopped, redactedUrl, RedisUnavailableError, RedisWatch } from '../../cluster/redis';
import { SegvolError } from '../../core/errors';
import { blockDone, planChunkedPrediction, writePyramid, type ChunkedPlan, type ChunkedPlanOptions } from '../../inference/chunked';
import type { ModelBase } from '../../nn/model';
import { terminal } from '../context';
import { EXIT_UNAVAILABLE, exitWith, onStopSignals, signalExitCode } from '../signals';

export interface QueuedPredictOptions {
  model: string; in: string; out: string; queue: string; queueName?: string; block?: string;
  /** Seconds an unreachable Redis is retried (0: forever); seconds without a worker taking a block before a hint (0: none). */
  connectTimeout?: number; idleWarning?: number;
}

export async function predictQueued(model: ModelBase, o: QueuedPredictOptions, planOptions: ChunkedPlanOptions): Promise<void> {
  if (o.block) throw new SegvolError('ERR_ARGUMENT', '--block splits work without a queue; with --queue the workers share the blocks');
  const connection = { url: o.queue, ...(o.queueName ? { name: o.queueName } : {}) };
  const name = queueName(connection);
  const note = (line: string) => terminal.note(`${process.stderr.isTTY ? '\n' : ''}segvol: ${line}`);
  const controller = new AbortController();
  let stage: 'connecting' | 'planning' | 'queueing' | 'waiting' = 'connecting';
  let plan: ChunkedPlan | undefined;
  const stopped = (signal: NodeJS.Signals) => {
    if (plan && (stage === 'waiting' || stage === 'queueing')) {
      let written = 0;
      for (let b = 0; b < plan.blocks; ++b) if (blockDone(o.out, b)) ++written;
      const left = `${plan.blocks - written} left ${stage === 'waiting' ? 'stay queued' : 'may be partly queued'} on ${name} for the workers`;
      note(`stopped by ${signal}: ${written}/${plan.blocks} blocks written to ${o.out}; the ${left}. ` +
        'Run the same command again to follow them (it queues only what is missing, nothing twice)');
    } else {
      note(`stopped by ${signal} while ${stage}; nothing was queued`);
    }
    exitWith(signalExitCode(signal));
  };
  // The first signal stops the waits below; planning is not interruptible (it writes its plan
  // whole or not at all), so a signal then, or a second one, ends the process at once.
  const off = onStopSignals((signal, count) => {
    if (count > 1 || stage === 'planning') {
      stopped(signal);
      process.exit(signalExitCode(signal));
    }
    controller.abort(signal);
  });
  const watch = new RedisWatch(o.queue, { ...(o.connectTimeout !== undefined ? { connectTimeout: o.connectTimeout } : {}), onNotice: note });
  const signal = controller.signal;
  try {
    await watch.ready(signal);
    stage = 'planning';
    plan = await planChunkedPrediction(model, o.in, o.out, planOptions);
    stage = 'queueing';
    const r = await enqueueBlocks(connection, o.model, o.out, plan, { watch, signal });
    terminal.print(`${o.out}: ${plan.blocks} blocks of ${plan.chunks.join('x')}; ${r.done} already written, ${r.queued} queued on ${redactedUrl(o.queue)} (${name})`);
    stage = 'waiting';
    const bar = terminal.progress('blocks');
    const start = `segvol worker --queue ${redactedUrl(o.queue)}${o.queueName ? ` --queue-name ${o.queueName}` : ''}`;
    const waited = await waitForBlocks(connection, o.out, plan, {
      watch, signal, ...(o.idleWarning !== undefined ? { idleWarning: o.idleWarning } : {}),
      onProgress: (done, total, eta, active) => bar.update(done / total, `${done}/${total} blocks, ${active} in work, eta ${terminal.duration(eta)}`),
      onIdle: (seconds, workers) => note(`no worker has taken a block of ${name} for ${seconds} s` +
        `${workers === 0 ? ' (none is connected to it)' : workers ? ` (${workers} connected to it)` : ''}: start one with ${start}`),
    });
    bar.done();
    if (waited.stopped) {
      stopped(signal.reason as NodeJS.Signals);
      return;
    }
    // An OME-Zarr image's lower levels are built here once every level-0 block is written.
    if (plan.ome) await writePyramid(o.out, plan);
    terminal.print(`wrote ${o.out}${plan.ome ? ` (OME-Zarr ${plan.ome.version}, ${plan.ome.levels.length} levels)` : ''}`);
  } catch (error) {
    if (error instanceof QueueStopped) {
      stopped(error.reason as NodeJS.Signals);
      return;
    }
    if (error instanceof RedisUnavailableError) {
      note(error.message.replace(/^segvol: /, ''));
      exitWith(EXIT_UNAVAILABLE);
      return;
    }
    throw error;
  } finally {
    off();
    watch.close();
  }
}
