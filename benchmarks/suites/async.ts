// npm run bench -- async: each heavy op's Promise form against its synchronous form, in
// the same process, on the same tensors. The two forms alternate run by run, so that a
// busy machine slows both alike; each prints the median of its runs after two warm-ups
// of each, and ratio = promise_ms / sync_ms (issue 26: within 5%). --blocks sync|promise
// times the first case in two blocks instead (see blocks()).
import { ops, Tensor, type ClstmWeights, type RnnWeights } from '../../lib';
import { optimized } from '../../lib/testing';
import { median, randomTensor, round, type Suite } from '../common';

/** One forward and backward, synchronous or through Promises; returns what frees its outputs. */
type Run = (promise: boolean) => Promise<() => void>;

interface AsyncCase {
  name: string;
  /** Makes the case's inputs and its run; free() disposes of the inputs. */
  setup(): { run: Run; free(): void };
}

const disposeAll = (tensors: Iterable<Tensor | undefined>): void => {
  for (const t of tensors) t?.dispose();
};

function clstmWeights(channels: number, hidden: number, kernel: number): ClstmWeights {
  return {
    wx: randomTensor([4 * hidden, channels, kernel, kernel], 'cpu', 0.1), bx: randomTensor([4 * hidden], 'cpu', 0.1),
    wh: randomTensor([4 * hidden, hidden, kernel, kernel], 'cpu', 0.1), bh: randomTensor([4 * hidden], 'cpu', 0.1),
  };
}

function pyramidCase(channels: number, hidden: number, size: [number, number, number]): AsyncCase {
  return {
    name: `pyramidLstm forward+backward C=${channels} O=${hidden} k=7 on ${size.join('x')}`,
    setup() {
      const x = randomTensor([1, channels, ...size]);
      const weights = [0, 1, 2, 3, 4, 5].map(() => clstmWeights(channels, hidden, 7));
      const dy = Tensor.full([1, hidden, ...size], 1);
      const run: Run = async (promise) => {
        const r = promise ? await ops.pyramidLstmAsync(x, weights) : ops.pyramidLstm(x, weights);
        const g = promise ? await optimized.pyramidLstmBackwardAsync(r.saved, dy) : optimized.pyramidLstmBackward(r.saved, dy);
        return () => disposeAll([r.y, g.dx, ...g.grads.flatMap((d) => Object.values(d)), r.saved]);
      };
      return { run, free: () => disposeAll([x, dy, ...weights.flatMap((w) => Object.values(w))]) };
    },
  };
}

const scanCase: AsyncCase = {
  name: 'clstmScan forward+backward C=16 O=32 k=7 on 8x64x64, direction +D',
  setup() {
    const x = randomTensor([1, 16, 8, 64, 64]);
    const weights = clstmWeights(16, 32, 7);
    const dh = Tensor.full([1, 32, 8, 64, 64], 1);
    const options = { direction: 0 as const };
    const run: Run = async (promise) => {
      const r = promise ? await ops.clstmScanAsync(x, weights, options) : ops.clstmScan(x, weights, options);
      const g = promise ? await optimized.clstmScanBackwardAsync(r.saved, { dh }) : optimized.clstmScanBackward(r.saved, { dh });
      return () => disposeAll([r.h, r.hLast, r.cLast, g.dx, g.dh0, g.dc0, ...Object.values(g.grads), r.saved]);
    };
    return { run, free: () => disposeAll([x, dh, ...Object.values(weights)]) };
  },
};

const lstmCase: AsyncCase = {
  name: 'rnn (LSTM) forward+backward T=100 N=16 I=256 H=256',
  setup() {
    const [steps, batch, size] = [100, 16, 256];
    const x = randomTensor([steps, batch, size]);
    const weights: RnnWeights = {
      wih: randomTensor([4 * size, size], 'cpu', 0.06), whh: randomTensor([4 * size, size], 'cpu', 0.06),
      bih: randomTensor([4 * size], 'cpu', 0.06), bhh: randomTensor([4 * size], 'cpu', 0.06),
    };
    const dy = Tensor.full([steps, batch, size], 1);
    const options = { cell: 'lstm' as const };
    const run: Run = async (promise) => {
      const r = promise ? await ops.rnnAsync(x, weights, options) : ops.rnn(x, weights, options);
      const g = promise ? await optimized.rnnBackwardAsync(r.saved, { dy }) : optimized.rnnBackward(r.saved, { dy });
      return () => disposeAll([r.y, r.hN, r.cN, ...Object.values(g), r.saved]);
    };
    return { run, free: () => disposeAll([x, dy, ...Object.values(weights)]) };
  },
};

const convCase: AsyncCase = {
  name: 'conv forward+backward 2D 7x7 C=25 O=128, 8 planes 64x64',
  setup() {
    const x = randomTensor([8, 25, 64, 64]);
    const w = randomTensor([128, 25, 7, 7], 'cpu', 0.05);
    const dy = Tensor.full([8, 128, 64, 64], 1);
    const options = { padding: 3 };
    const run: Run = async (promise) => {
      const y = promise ? await ops.convAsync(x, w, options) : ops.conv(x, w, options);
      const g = promise ? await optimized.convBackwardAsync(x, w, dy, options) : optimized.convBackward(x, w, dy, options);
      return () => disposeAll([y, g.dx, g.dw, g.db]);
    };
    return { run, free: () => disposeAll([x, w, dy]) };
  },
};

const cases: readonly AsyncCase[] = [
  pyramidCase(5, 16, [8, 64, 64]), pyramidCase(25, 32, [8, 64, 64]), scanCase, lstmCase, convCase,
];

async function timed(run: Run, promise: boolean): Promise<number> {
  const start = process.hrtime.bigint();
  const release = await run(promise);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  release();
  return ms;
}

/**
 * --blocks sync|promise: the first case only, in two blocks, the named form first: the
 * first block runs while the process holds one OpenMP team, the second after the other
 * form's thread has started a second one.
 */
async function blocks(first: 'sync' | 'promise', repeats: number): Promise<void> {
  const c = cases[0]!;
  const { run, free } = c.setup();
  const forms = first === 'sync' ? [false, true] : [true, false];
  const row: Record<string, number | string> = { case: `${c.name}, ${first} block first` };
  for (const promise of forms) {
    const times: number[] = [];
    for (let i = 0; i < repeats + 2; ++i) {
      const ms = await timed(run, promise);
      if (i >= 2) times.push(ms);
    }
    row[promise ? 'promise_ms' : 'sync_ms'] = round(median(times), 1);
  }
  free();
  row.ratio = round(Number(row.promise_ms) / Number(row.sync_ms), 3);
  console.log(JSON.stringify(row));
}

export const asyncOps: Suite = {
  name: 'async',
  async run({ repeats, value }) {
    const { OMP_WAIT_POLICY: policy, GOMP_SPINCOUNT: spins } = process.env;
    console.error(policy === undefined && spins === undefined
      ? 'OpenMP waits: PASSIVE (segvol\'s default: neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set)'
      : `OpenMP waits as set: OMP_WAIT_POLICY=${policy ?? '(unset)'} GOMP_SPINCOUNT=${spins ?? '(unset)'}`);
    const first = value('--blocks');
    if (first !== undefined) {
      if (first !== 'sync' && first !== 'promise') throw new Error(`--blocks: expected sync or promise, received '${first}'`);
      await blocks(first, repeats);
      return;
    }
    for (const c of cases) {
      const { run, free } = c.setup();
      const times: Record<'sync' | 'promise', number[]> = { sync: [], promise: [] };
      for (let i = 0; i < repeats + 2; ++i) {
        // Alternate which form goes first, so neither always follows the other.
        const order = i % 2 === 0 ? [false, true] : [true, false];
        for (const promise of order) {
          const ms = await timed(run, promise);
          if (i >= 2) times[promise ? 'promise' : 'sync'].push(ms);
        }
      }
      free();
      const syncMs = median(times.sync);
      const promiseMs = median(times.promise);
      console.log(JSON.stringify({
        case: c.name, sync_ms: round(syncMs, 1), promise_ms: round(promiseMs, 1), ratio: round(promiseMs / syncMs, 3), target_ratio: 1.05,
      }));
    }
  },
};
