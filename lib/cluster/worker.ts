// A block worker: takes block jobs from the queue (blocks.ts), predicts each block with its
// halo and writes its chunk. Stopping: close() takes no new block, lets the blocks in work
// finish (a chunk is written whole, then marked done) or, with abandon, gives them back to
// the queue at once, and closes the connections, whatever state Redis is in. A worker whose
// Redis stays unreachable for connectTimeout seconds (at the start or mid-run) stops the same
// way and reports RedisUnavailableError through `stopped`.
import { WaitingError, Worker, type Job } from 'bullmq';
import type { Device } from '../core/tensor';
import { blockDone, predictBlock, readChunkedPlan, type ChunkedPlan } from '../inference/chunked';
import { loadModel } from '../models/load';
import type { ModelBase } from '../nn/model';
import { queueName, type BlockJob, type QueueConnection } from './blocks';
import { isConnectionError, redisConnection, RedisWatch, sleep, within, type RedisWatchOptions } from './redis';

export interface WorkerOptions extends RedisWatchOptions {
  /** Jobs at once in this process (default 1: a block already uses every core). */
  concurrency?: number;
  /** How long a job stays with a worker that stops answering before another takes it (default 60). */
  lockSeconds?: number;
  device?: Device;
  onBlock?: (block: number, out: string, seconds: number) => void;
}

export interface BlockWorker {
  worker: Worker<BlockJob>;
  /** The watch on the worker's Redis (whether it answers). */
  watch: RedisWatch;
  /**
   * Settles once the worker has stopped: resolves after close(); rejects with
   * RedisUnavailableError when Redis stayed unreachable for connectTimeout seconds.
   */
  stopped: Promise<void>;
  /** The blocks in work now. */
  readonly inWork: number[];
  /**
   * Stops: no new block; the blocks in work finish (or, with abandon, go back to the queue
   * now: their chunks are then either whole or absent); the connections close. Call it again
   * with abandon to cut a finishing stop short.
   */
  close(options?: { abandon?: boolean }): Promise<void>;
}

interface InWork {
  block: number;
  abandon: () => void;
  settled: Promise<void>;
}

/** Starts a worker: takes block jobs until close(). Models are loaded once per file. */
export function startBlockWorker(connection: QueueConnection, options: WorkerOptions = {}): BlockWorker {
  const models = new Map<string, ModelBase>();
  const plans = new Map<string, ChunkedPlan>();
  const lock = (options.lockSeconds ?? 60) * 1000;
  const notice = options.onNotice ?? ((line: string) => console.error(line));
  const watch = new RedisWatch(connection.url, { ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}), onNotice: notice });
  const entries = new Set<InWork>();
  const background = new Set<Promise<unknown>>();  // abandoned blocks still computing
  let closing: Promise<void> | undefined;
  // A test hook: a delay before each block (so a test can stop or kill a worker mid-block).
  const delay = Number(process.env.SEGVOL_WORKER_TEST_DELAY_MS ?? 0);

  /** A job this worker will not finish goes back to the queue now if Redis answers; else its lock lapses. */
  const giveBack = async (job: Job<BlockJob>, token: string | undefined): Promise<void> => {
    const where = `block ${job.data.block} of ${job.data.out}`;
    if (token && watch.up) {
      const moved = await watch.guard(within(job.moveToWait(token).then(() => true), 3000)).catch(() => false);
      if (moved) {
        notice(`${where} given back to the queue`);
        return;
      }
    }
    notice(`${where} left unfinished: another worker takes it when its lock lapses (${lock / 1000} s)`);
  };

  const worker = new Worker<BlockJob>(queueName(connection), async (job: Job<BlockJob>, token?: string) => {
    const { model: file, out, block } = job.data;
    if (closing) {
      await giveBack(job, token);
      throw new WaitingError();
    }
    if (blockDone(out, block)) return 'already written';
    let abandon!: () => void, settle!: () => void;
    const abandoned = new Promise<'abandoned'>((resolve) => (abandon = () => resolve('abandoned')));
    const entry: InWork = { block, abandon, settled: new Promise<void>((resolve) => (settle = resolve)) };
    entries.add(entry);
    try {
      const work = (async () => {
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
        if (delay > 0) await sleep(delay);
        await predictBlock(model, out, plan, block);
        return (Date.now() - started) / 1000;
      })();
      const result = await Promise.race([work, abandoned]);
      if (result === 'abandoned') {
        const left = work.catch(() => {}).finally(() => background.delete(left));
        background.add(left);
        await giveBack(job, token);
        throw new WaitingError();
      }
      options.onBlock?.(block, out, result);
      return 'written';
    } finally {
      entries.delete(entry);
      settle();
    }
  }, {
    connection: redisConnection(connection.url), concurrency: options.concurrency ?? 1, lockDuration: lock,
    stalledInterval: Math.max(500, Math.floor(lock / 2)), maxStalledCount: 3,
  });
  // Connection trouble is the watch's to say (once per outage). Other errors repeat on every
  // retry too: each is said once, then once a minute while it lasts, so a worker left running
  // never floods its log.
  let lastMessage = '', lastTime = 0;
  worker.on('error', (error: Error) => {
    if (!watch.up || isConnectionError(error)) return;
    const now = Date.now();
    if (error.message !== lastMessage || now - lastTime > 60_000) {
      notice(`${error.message}${error.message === lastMessage ? ' (still)' : ''}`);
      lastMessage = error.message;
      lastTime = now;
    }
  });

  let resolveStopped!: () => void, rejectStopped!: (error: unknown) => void;
  const stopped = new Promise<void>((resolve, reject) => { resolveStopped = resolve; rejectStopped = reject; });
  stopped.catch(() => {});
  let failure: unknown;

  const close = (o: { abandon?: boolean } = {}): Promise<void> => {
    if (o.abandon) for (const e of entries) e.abandon();
    closing ??= (async () => {
      // With Redis down, BullMQ's own close would wait for it forever: force it.
      const bull = worker.close(!watch.up).then(() => true, () => true);
      await Promise.all([...entries].map((e) => e.settled));
      // BullMQ records the blocks just finished if Redis answers, within a few seconds.
      const bullClosed = await within(bull, 3000);
      if (!bullClosed) void worker.disconnect().catch(() => {});
      watch.close();
      if (background.size === 0) for (const m of models.values()) m.dispose();
      if (failure) rejectStopped(failure);
      else resolveStopped();
    })();
    return closing;
  };
  // Redis unreachable for connectTimeout: stop as on close() (unless already stopping), and say why.
  watch.gaveUp.catch((error: unknown) => {
    if (!closing) failure = error;
    void close();
  });

  return {
    worker, watch, stopped, close,
    get inWork() {
      return [...entries].map((e) => e.block);
    },
  };
}
