// Block-wise inference spread over worker processes by a job queue: BullMQ on Redis.
// The coordinator plans the output (lib/inference/chunked.ts) and enqueues one job per
// block not yet written; workers on any machine that reaches Redis and the store take
// jobs, predict the block with its halo and write its chunk. Delivery is at least once:
// a worker that dies holding a job loses its lock, and after lockSeconds the job is
// handed to another worker. Block writes are idempotent (the same bytes, whole chunks),
// so a block done twice changes nothing.
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { describe, SegvolError } from '../core/errors';
import type { Device } from '../core/tensor';
import { blockDone, predictBlock, readChunkedPlan, type ChunkedPlan } from '../inference/chunked';
import type { ModelBase } from '../nn/model';
import { loadModel } from '../models/load';

export interface QueueConnection {
  /** redis://[:password@]host:port[/db] */
  url: string;
  /** The queue's name (default 'segvol-blocks'): coordinator and workers must agree. */
  name?: string;
}

interface BlockJob {
  model: string;
  out: string;
  block: number;
}

/** BullMQ's connection options from a redis:// URL. */
export function redisConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SegvolError('ERR_ARGUMENT', `queue: expected a redis://host:port URL, received ${describe(url)}`);
  }
  if (u.protocol !== 'redis:') throw new SegvolError('ERR_ARGUMENT', `queue: expected a redis://host:port URL, received ${describe(url)}`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}), maxRetriesPerRequest: null,
  };
}

const queueName = (q: QueueConnection) => q.name ?? 'segvol-blocks';

export interface EnqueueResult {
  /** Blocks put on the queue, and blocks already written (skipped). */
  queued: number;
  done: number;
  blocks: number;
}

/**
 * Puts every block of a planned output that is not written yet on the queue. A block's job id
 * is fixed by the output and the block, so enqueueing twice adds nothing.
 */
export async function enqueueBlocks(connection: QueueConnection, modelFile: string, out: string, plan: ChunkedPlan, options: { attempts?: number } = {}): Promise<EnqueueResult> {
  const queue = new Queue<BlockJob>(queueName(connection), { connection: redisConnection(connection.url) });
  try {
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
        opts: { jobId: `${tag}-${block}`, attempts: options.attempts ?? 5, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: true, removeOnFail: false },
      });
    }
    if (jobs.length) await queue.addBulk(jobs);
    return { queued: jobs.length, done, blocks: plan.blocks };
  } finally {
    await queue.close();
  }
}

/**
 * Waits until every block of the output is written, reporting progress and an ETA from the
 * written blocks; fails when the queue holds failed jobs for it (after their retries).
 */
export async function waitForBlocks(connection: QueueConnection, out: string, plan: ChunkedPlan,
  options: { onProgress?: (done: number, total: number, etaSeconds: number, active: number) => void; signal?: AbortSignal; pollMs?: number } = {}): Promise<void> {
  const queue = new Queue<BlockJob>(queueName(connection), { connection: redisConnection(connection.url) });
  const started = Date.now();
  const first = countDone(out, plan);
  try {
    for (;;) {
      const done = countDone(out, plan);
      const counts = await queue.getJobCounts('active', 'waiting', 'delayed', 'failed');
      const rate = (done - first) / Math.max(1e-3, (Date.now() - started) / 1000);
      options.onProgress?.(done, plan.blocks, rate > 0 ? (plan.blocks - done) / rate : Infinity, counts.active ?? 0);
      if (done === plan.blocks) return;
      if ((counts.failed ?? 0) > 0) {
        const failed = await queue.getFailed(0, 0);
        throw new SegvolError('ERR_NATIVE', `queue ${queueName(connection)}: ${counts.failed} block job(s) failed after their retries` +
          `${failed[0] ? ` (block ${failed[0].data.block}: ${failed[0].failedReason})` : ''}; fix the cause and run again (finished blocks are kept)`);
      }
      if (options.signal?.aborted) throw new SegvolError('ERR_ARGUMENT', 'waiting for blocks: aborted (the queued jobs stay on the queue)');
      await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
    }
  } finally {
    await queue.close();
  }
}

function countDone(out: string, plan: ChunkedPlan): number {
  let n = 0;
  for (let b = 0; b < plan.blocks; ++b) if (blockDone(out, b)) ++n;
  return n;
}

export interface WorkerOptions {
  /** Jobs at once in this process (default 1: a block already uses every core). */
  concurrency?: number;
  /** How long a job stays with a worker that stops answering before another takes it (default 60). */
  lockSeconds?: number;
  device?: Device;
  onBlock?: (block: number, out: string, seconds: number) => void;
}

/** Starts a worker: takes block jobs until close(). Models are loaded once per file. */
export function startBlockWorker(connection: QueueConnection, options: WorkerOptions = {}): { close(): Promise<void>; worker: Worker<BlockJob> } {
  const models = new Map<string, ModelBase>();
  const plans = new Map<string, ChunkedPlan>();
  const lock = (options.lockSeconds ?? 60) * 1000;
  // A test hook: a delay before each block (so a test can kill a worker mid-block).
  const delay = Number(process.env.SEGVOL_WORKER_TEST_DELAY_MS ?? 0);
  const worker = new Worker<BlockJob>(queueName(connection), async (job: Job<BlockJob>) => {
    const { model: file, out, block } = job.data;
    if (blockDone(out, block)) return 'already written';
    let model = models.get(file);
    if (!model) {
      model = loadModel(file).to(options.device ?? 'cpu');
      models.set(file, model);
    }
    let plan = plans.get(out);
    if (!plan) {
      plan = readChunkedPlan(out);
      plans.set(out, plan);
    }
    const started = Date.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    await predictBlock(model, out, plan, block);
    options.onBlock?.(block, out, (Date.now() - started) / 1000);
    return 'written';
  }, {
    connection: redisConnection(connection.url), concurrency: options.concurrency ?? 1, lockDuration: lock,
    stalledInterval: Math.max(500, Math.floor(lock / 2)), maxStalledCount: 3,
  });
  // Connection trouble (Redis restarting or gone) repeats on every retry: say it once, then
  // once a minute while it lasts, so a worker left running never floods its log.
  let lastMessage = '', lastTime = 0;
  worker.on('error', (error: Error) => {
    const now = Date.now();
    if (error.message !== lastMessage || now - lastTime > 60_000) {
      console.error(`worker ${process.pid}: ${error.message}${error.message === lastMessage ? ' (still)' : ''}`);
      lastMessage = error.message;
      lastTime = now;
    }
  });
  return {
    worker,
    async close() {
      await worker.close();
      for (const m of models.values()) m.dispose();
    },
  };
}

/** This process's peak resident memory in MiB (what a worker reports when it stops). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}


