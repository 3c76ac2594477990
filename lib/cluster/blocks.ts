// Block-wise inference spread over worker processes by a job queue: BullMQ on Redis.
// The coordinator plans the output (lib/inference/chunked.ts) and enqueues one job per
// block not yet written; workers on any machine that reaches Redis and the store take
// jobs (worker.ts), predict the block with its halo and write its chunk. Delivery is at
// least once: a worker that dies holding a job loses its lock, and after lockSeconds the
// job is handed to another worker. Block writes are idempotent (the same bytes, whole
// chunks), so a block done twice changes nothing. Redis that does not answer is retried
// for a bounded time (redis.ts), and every wait here ends on an AbortSignal.
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { SegvolError } from '../core/errors';
import { blockDone, type ChunkedPlan } from '../inference/chunked';
import { QueueStopped, redisConnection, RedisWatch, sleep, within, type RedisWatchOptions } from './redis';

export { redisConnection, RedisUnavailableError, QueueStopped } from './redis';

export interface QueueConnection {
  /** redis://[:password@]host:port[/db] */
  url: string;
  /** The queue's name (default 'segvol-blocks'): coordinator and workers must agree. */
  name?: string;
}

export interface BlockJob {
  model: string;
  out: string;
  block: number;
}

export const queueName = (q: QueueConnection): string => q.name ?? 'segvol-blocks';

export interface EnqueueResult {
  /** Blocks put on the queue, and blocks already written (skipped). */
  queued: number;
  done: number;
  blocks: number;
}

export interface QueueWaitOptions extends RedisWatchOptions {
  /** The watch on this Redis to use (the caller's, shared by several calls); else one of the call's own. */
  watch?: RedisWatch;
  /** Stops the wait (QueueStopped from enqueueBlocks; waitForBlocks returns stopped). */
  signal?: AbortSignal;
}

/** Runs fn with a queue on the watched Redis; BullMQ's own error events are silenced (the watch speaks). */
async function withQueue<T>(connection: QueueConnection, options: QueueWaitOptions, fn: (queue: Queue<BlockJob>, watch: RedisWatch) => Promise<T>): Promise<T> {
  const watch = options.watch ?? new RedisWatch(connection.url, options);
  const queue = new Queue<BlockJob>(queueName(connection), { connection: redisConnection(connection.url) });
  queue.on('error', () => {});
  try {
    return await fn(queue, watch);
  } finally {
    // A queue whose Redis is gone would wait for it to close: give it a second, then cut it.
    const closed = await within(queue.close().then(() => true), 1000);
    if (!closed) void queue.disconnect().catch(() => {});
    if (!options.watch) watch.close();
  }
}

/**
 * Puts every block of a planned output that is not written yet on the queue. A block's job id
 * is fixed by the output and the block, so enqueueing twice adds nothing. Rejects with
 * RedisUnavailableError when Redis does not answer within connectTimeout, QueueStopped on the signal.
 */
export async function enqueueBlocks(connection: QueueConnection, modelFile: string, out: string, plan: ChunkedPlan,
  options: QueueWaitOptions & { attempts?: number } = {}): Promise<EnqueueResult> {
  return withQueue(connection, options, async (queue, watch) => {
    const tag = crypto.createHash('sha1').update(path.resolve(out)).digest('hex').slice(0, 12);
    const jobs = [];
    let done = 0;
    for (let block = 0; block < plan.blocks; ++block) {
      if (blockDone(out, block)) {
        ++done;
        continue;
      }
      jobs.push({
        name: 'block', data: { model: path.resolve(modelFile), out: path.resolve(out), block },
        opts: { jobId: `${tag}-${block}`, attempts: options.attempts ?? 5, backoff: { type: 'fixed' as const, delay: 1000 }, removeOnComplete: true, removeOnFail: false },
      });
    }
    if (jobs.length) await watch.guard(queue.addBulk(jobs), options.signal);
    return { queued: jobs.length, done, blocks: plan.blocks };
  });
}

export interface WaitResult {
  /** Blocks written (marked done) when the wait ended, of blocks. */
  written: number;
  blocks: number;
  /** The wait ended on the signal before every block was written. */
  stopped: boolean;
}

export interface WaitForBlocksOptions extends QueueWaitOptions {
  onProgress?: (done: number, total: number, etaSeconds: number, active: number) => void;
  /**
   * Called when no worker has taken a block for idleWarning seconds (default 60; 0: never),
   * then after twice, four times, ... that long while it lasts; workers: how many are
   * connected to the queue (undefined when Redis does not tell).
   */
  onIdle?: (seconds: number, workers: number | undefined) => void;
  idleWarning?: number;
  pollMs?: number;
}

/**
 * Waits until every block of the output is written, reporting progress and an ETA from the
 * written blocks; fails when the queue holds failed jobs for it (after their retries), or
 * with RedisUnavailableError when Redis stays unreachable for connectTimeout. On the signal it
 * returns at once with stopped set; the queued jobs stay on the queue for the workers.
 */
export async function waitForBlocks(connection: QueueConnection, out: string, plan: ChunkedPlan, options: WaitForBlocksOptions = {}): Promise<WaitResult> {
  return withQueue(connection, options, async (queue, watch) => {
    const started = Date.now();
    const first = countDone(out, plan);
    const idleWarning = (options.idleWarning ?? 60) * 1000;
    let lastActivity = Date.now(), lastDone = first, lastPending = Infinity, nextWarning = idleWarning;
    for (;;) {
      const done = countDone(out, plan);
      if (done === plan.blocks) return { written: done, blocks: plan.blocks, stopped: false };
      if (options.signal?.aborted) return { written: done, blocks: plan.blocks, stopped: true };
      let counts: Record<string, number> | undefined;
      try {
        // While Redis is away the written blocks still count (they are on disk); a count that
        // takes long is skipped, and the watch gives up after connectTimeout.
        counts = await watch.guard(within(queue.getJobCounts('active', 'waiting', 'delayed', 'failed'), 2000), options.signal);
      } catch (error) {
        if (error instanceof QueueStopped) return { written: done, blocks: plan.blocks, stopped: true };
        throw error;
      }
      const rate = (done - first) / Math.max(1e-3, (Date.now() - started) / 1000);
      options.onProgress?.(done, plan.blocks, rate > 0 ? (plan.blocks - done) / rate : Infinity, counts?.active ?? 0);
      if ((counts?.failed ?? 0) > 0) {
        const failed = await watch.guard(queue.getFailed(0, 0), options.signal).catch(() => []);
        throw new SegvolError('ERR_NATIVE', `queue ${queueName(connection)}: ${counts!.failed} block job(s) failed after their retries` +
          `${failed[0] ? ` (block ${failed[0].data.block}: ${failed[0].failedReason})` : ''}; fix the cause and run again (finished blocks are kept)`);
      }
      // A worker at work: a block written, a job active, or fewer jobs waiting than before.
      const pending = counts ? (counts.waiting ?? 0) + (counts.delayed ?? 0) : lastPending;
      if (done > lastDone || (counts?.active ?? 0) > 0 || pending < lastPending) {
        lastActivity = Date.now();
        nextWarning = idleWarning;
      }
      lastDone = done;
      lastPending = pending;
      if (idleWarning > 0 && counts && Date.now() - lastActivity >= nextWarning) {
        const workers = await watch.guard(queue.getWorkersCount(), options.signal).catch(() => undefined);
        options.onIdle?.(Math.round((Date.now() - lastActivity) / 1000), workers);
        nextWarning *= 2;
      }
      await sleep(options.pollMs ?? 500, options.signal);
    }
  });
}

function countDone(out: string, plan: ChunkedPlan): number {
  let n = 0;
  for (let b = 0; b < plan.blocks; ++b) if (blockDone(out, b)) ++n;
  return n;
}

/** This process's peak resident memory in MiB (what a worker reports when it stops). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}
