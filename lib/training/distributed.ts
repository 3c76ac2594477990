// Data-parallel training across the ranks of an MPI job. Each rank draws its share of
// every batch (indexed window seeds: rank r of N draws windows r*b..(r+1)*b-1 of a global
// batch of N*b, the ones one process at the whole batch would draw), computes its
// gradients, and one allreduce averages them with the loss; every rank then makes the
// same update. Rank 0 alone writes checkpoints, the log and the best model. At start
// the ranks compare digests of the model, its weights and the run's settings, and
// refuse to train when one differs. See docs/cluster.md.
import { createHash } from 'node:crypto';
import { openDistributedGroup, type DistributedGroup } from '../core/distributed';
import { describe, SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { rejectUnknown } from '../core/validate';
import type { ModelBase } from '../nn/model';
import { ops } from '../ops';
import type { Plan } from './plan';
import type { StepCollective } from './step';
import type { IndexedWindows, WindowDrawer } from './windows';

export interface DistributedOptions {
  kind: 'mpi';
  /** Seconds a collective may wait for the other ranks before failing with ERR_PEER_LOST (default 300). */
  timeoutSeconds?: number;
  /** Seconds the ranks may take to all start (default 600). */
  startupTimeoutSeconds?: number;
  /** Gradients are averaged in buckets of about this many MiB, each as soon as backward has finished it (default 25, PyTorch DDP's). */
  bucketMiB?: number;
}

/** The Trainer's distributed option, checked (before any MPI call). */
export function checkDistributed(value: unknown): DistributedOptions {
  const options = value === 'mpi' ? { kind: 'mpi' as const } : value;
  if (options === null || typeof options !== 'object' || (options as { kind?: unknown }).kind !== 'mpi') {
    throw new SegvolError('ERR_ARGUMENT', `Trainer: distributed: expected 'mpi' or { kind: 'mpi', timeoutSeconds?, startupTimeoutSeconds? }, received ${describe(value)}`);
  }
  rejectUnknown(options, ['kind', 'timeoutSeconds', 'startupTimeoutSeconds', 'bucketMiB'], 'Trainer: distributed');
  const bucket = (options as DistributedOptions).bucketMiB;
  if (bucket !== undefined && !(typeof bucket === 'number' && bucket > 0)) {
    throw new SegvolError('ERR_ARGUMENT', `Trainer: distributed.bucketMiB: expected a positive number, received ${describe(bucket)}`);
  }
  return options as DistributedOptions;
}

/** The drawer's indexed seeding for these options (distributed runs always), or undefined for the stream. */
export function indexedWindows(options: { distributed?: unknown; windowSeeds?: unknown; seed?: number }): IndexedWindows | undefined {
  const mode = options.windowSeeds ?? 'stream';
  if (mode !== 'stream' && mode !== 'indexed') throw new SegvolError('ERR_ARGUMENT', `Trainer: windowSeeds: expected 'stream' or 'indexed', received ${describe(mode)}`);
  return options.distributed !== undefined || mode === 'indexed' ? { seed: options.seed ?? 0, rank: 0, ranks: 1 } : undefined;
}

/**
 * The settings as text for the start-up digest: arrays of data by their type and length
 * (a volume's values would make it as large as the data), tensors by their shape,
 * functions by their source, signals left out.
 */
function describeSettings(settings: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(settings, (_key, value: unknown) => {
    if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as { length?: number }).length ?? value.byteLength})`;
    if (value instanceof Tensor) return `Tensor(${value.shape.join('x')})`;
    if (typeof value === 'function') return `function ${value.toString().length}:${value.toString().slice(0, 200)}`;
    if (typeof AbortSignal !== 'undefined' && value instanceof AbortSignal) return undefined;
    if (value !== null && typeof value === 'object') {
      if (seen.has(value)) return '[seen]';
      seen.add(value);
    }
    return value;
  });
}

export class DataParallel {
  private constructor(readonly group: DistributedGroup, private readonly options: DistributedOptions) {}

  /** The group (opened on the first fit), made ready for this fit's plans (see ready()). */
  static async prepare(existing: DataParallel | undefined, options: DistributedOptions, model: ModelBase, plans: readonly Plan[],
    windows: WindowDrawer, settings: unknown): Promise<DataParallel> {
    const parallel = existing ?? new DataParallel(await openDistributedGroup(options), options);
    await parallel.ready(model, plans, windows, settings);
    return parallel;
  }

  get leader(): boolean {
    return this.group.rank === 0;
  }

  /**
   * Before the first step: every phase's batch splits evenly over the ranks, the drawer
   * draws this rank's share, and the ranks agree on the model, weights and settings.
   */
  async ready(model: ModelBase, plans: readonly Plan[], windows: WindowDrawer, settings: unknown): Promise<void> {
    const { rank, size } = this.group;
    for (const p of plans) {
      if (p.batchSize % size !== 0) {
        const lower = Math.max(size, p.batchSize - (p.batchSize % size));
        throw new SegvolError('ERR_ARGUMENT', `fit: ${p.name}: the batch size ${p.batchSize} does not split over ${size} ranks; ` +
          `the batch size is the global one (each rank draws batchSize / ranks windows): use ${lower} or ${lower + size}`);
      }
    }
    windows.indexed = { seed: windows.indexed?.seed ?? 0, rank, ranks: size };
    const digest = createHash('sha256');
    digest.update(describeSettings({ settings, plans: plans.map((p) => ({ name: p.name, size: p.size, batchSize: p.batchSize, steps: p.steps })) }));
    for (const [name, p] of model.namedParameters()) {
      digest.update(`${name}:${p.shape.join('x')}:`);
      digest.update(new Uint8Array(p.toArray().buffer));
    }
    const mine = new Uint8Array(digest.digest());
    const all = await this.group.allgather(mine, 'the start-up check');
    const differing = all.map((d, r) => (Buffer.compare(Buffer.from(d), Buffer.from(all[0]!)) === 0 ? -1 : r)).filter((r) => r >= 0);
    if (differing.length > 0) {
      throw new SegvolError('ERR_ARGUMENT', `distributed: rank${differing.length > 1 ? 's' : ''} ${differing.join(', ')} of ${size} differ${differing.length > 1 ? '' : 's'} ` +
        `from rank 0 in the model, its weights or the training settings (seed, options, phases, checkpoint): every rank must run the same command on the same files`);
    }
  }

  /**
   * trainStep's collective for step `step` (1-based, named in errors): gradients are averaged
   * in buckets of about bucketMiB, each launched as soon as its gradients are final during
   * backward (on the communication thread, while backward goes on); the rest and the loss
   * after backward. Every rank launches the same buckets in the same order (same graph).
   */
  collective(step: number, model: ModelBase): StepCollective {
    const names = new Map<Tensor, string>([...model.namedParameters()].map(([name, p]) => [p, name] as const));
    const bucketBytes = (this.options.bucketMiB ?? 25) * 2 ** 20;
    const what = `the gradient allreduce of step ${step}`;
    const launched: Array<{ names: string[]; means: Promise<Tensor[]> }> = [];
    let bucket: Array<[string, Tensor]> = [];
    let bytes = 0;
    const launch = (entries: Array<[string, Tensor]>, extra: Tensor[] = []) => {
      const means = ops.allreduceMean([...entries.map(([, g]) => g), ...extra], { timeoutSeconds: this.group.timeoutSeconds, what });
      means.catch(() => undefined);  // awaited in finish; a step that fails first must not leave it unhandled
      launched.push({ names: entries.map(([n]) => n), means });
    };
    return {
      gradientReady: (parameter, gradient) => {
        const name = names.get(parameter);
        if (name === undefined) return;
        bucket.push([name, gradient]);
        bytes += gradient.size * 4;
        if (bytes >= bucketBytes) {
          launch(bucket);
          bucket = [];
          bytes = 0;
        }
      },
      finish: async (grads, loss) => {
        const sent = new Set(launched.flatMap((l) => l.names));
        const rest: Array<[string, Tensor]> = [...grads].filter(([n]) => !sent.has(n));
        const lossTensor = Tensor.fromArray([loss], [1], { device: grads.values().next().value?.device ?? 'cpu' });
        launch(rest, [lossTensor]);
        const reduced = new Map<string, Tensor>();
        let meanLoss = NaN;
        try {
          for (const l of launched) {
            const means = await l.means;
            l.names.forEach((n, i) => reduced.set(n, means[i]!));
            for (const extra of means.slice(l.names.length)) {
              meanLoss = extra.toArray()[0]!;
              extra.dispose();
            }
          }
        } catch (error) {
          for (const t of reduced.values()) t.dispose();
          throw error;
        } finally {
          lossTensor.dispose();
        }
        for (const g of grads.values()) g.dispose();
        // The map in the order the step gave it (namedParameters order).
        return { grads: new Map([...grads.keys()].map((n) => [n, reduced.get(n)!] as const)), loss: meanLoss };
      },
    };
  }
}
