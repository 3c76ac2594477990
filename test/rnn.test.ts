// The recurrent layers against PyTorch: torch.nn.RNN / LSTM / GRU themselves and an
// independent ConvLSTM (test/fixtures/make_rnn_fixtures.py), forward and every
// gradient; then the op on the reference backend, ragged batches, states, and
// bad input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import {
  createLayer, GradientTape, layers, loadLayerState, ops, readSafetensors, Tensor, type ConvLstmLayer, type DenseRecurrentLayer,
  type LayerBuilder,
} from '../lib';
import { optimized, reference } from '../lib/testing';
import { assertClose, randomTensor, rng } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'rnn');

interface Fixture {
  kind: 'rnn' | 'lstm' | 'gru' | 'convLstm';
  options: Record<string, unknown>;
  h0: boolean;
  lengths: number[] | null;
  tensors: Map<string, Tensor>;
}

function loadFixture(name: string): Fixture {
  const file = readSafetensors(path.join(dir, `${name}.safetensors`));
  const meta = JSON.parse(file.metadata.case!) as Omit<Fixture, 'tensors'>;
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of file.tensors) tensors.set(k, Tensor.fromArray(v.data, v.shape));
  return { ...meta, tensors };
}

function builderOf(f: Fixture): LayerBuilder<DenseRecurrentLayer | ConvLstmLayer> {
  const o = f.options as never;
  switch (f.kind) {
    case 'rnn': return layers.rnn(o);
    case 'lstm': return layers.lstm(o);
    case 'gru': return layers.gru(o);
    default: return layers.convLstm(o);
  }
}

const fixtures = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).map((f) => f.replace('.safetensors', '')).sort();

// float64 PyTorch vs float32 segvol over a few dozen steps: 2e-5 absolute + 1e-4 relative.
const tol = { abs: 2e-5, rel: 1e-4 };

test('the recurrent goldens are present (dense and ConvLSTM, ragged, bidirectional, projected)', (t) => {
  t.true(fixtures.length >= 15, `only ${fixtures.length} fixtures`);
  for (const kind of ['lstm', 'gru', 'rnn', 'convlstm']) t.true(fixtures.some((f) => f.startsWith(kind)), kind);
});

for (const name of fixtures) {
  test(`${name} matches PyTorch: output, final states and every gradient`, async (t) => {
    const f = loadFixture(name);
    const get = (k: string) => f.tensors.get(k);
    const layer = createLayer(builderOf(f), f.kind === 'convLstm' ? { inChannels: get('x')!.shape[1]! } : {});
    const state = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, v] of f.tensors) if (k.startsWith('param.')) state.set(k.slice(6), { shape: [...v.shape], data: v.toArray() });
    loadLayerState(layer, state);
    t.deepEqual([...layer.parameters.keys()].sort(), [...state.keys()].sort(), 'the layer has exactly the state_dict names');

    const x = get('x')!, h0 = get('h0'), c0 = get('c0');
    const tape = new GradientTape();
    for (const v of [x, h0, c0]) if (v) tape.watch(v);
    const r = await tape.record(() => layer.run(x, {
      ...(h0 ? { h0 } : {}), ...(c0 ? { c0 } : {}), ...(f.lengths ? { lengths: f.lengths } : {}),
    } as never));
    assertClose(t, r.output, get('out.output')!, tol, 'output');
    assertClose(t, r.hN, get('out.hN')!, tol, 'hN');
    if (get('out.cN')) assertClose(t, r.cN!, get('out.cN')!, tol, 'cN');
    const outs = [r.output, r.hN, ...(get('out.cN') ? [r.cN!] : [])];
    const seeds = [get('dy')!, get('dhN')!, ...(get('out.cN') ? [get('dcN')!] : [])];
    const grads = await tape.backward(outs, seeds);
    for (const [k, v] of [['x', x], ['h0', h0], ['c0', c0]] as const) {
      if (v) assertClose(t, grads.get(v)!, get(`grad.${k}`)!, tol, `grad of ${k}`);
    }
    for (const [k, p] of layer.parameters) assertClose(t, grads.get(p)!, get(`grad.${k}`)!, tol, `grad of ${k}`);
    tape.dispose();
  });
}

// One layer, one direction on the reference backend (double sums, plain loops) vs the optimized one.
const cellCases = [
  { cell: 'lstm', gates: 4 }, { cell: 'gru', gates: 3 }, { cell: 'rnnTanh', gates: 1 }, { cell: 'rnnRelu', gates: 1 },
] as const;
for (const { cell, gates } of cellCases) {
  for (const variant of ['plain', 'ragged reverse batchFirst with h0', 'projected'] as const) {
    if (variant === 'projected' && cell !== 'lstm') continue;
    test(`ops.rnn ${cell}, ${variant}: the optimized backend agrees with the reference`, (t) => {
      const random = rng(gates * 10 + variant.length);
      const T = 5, N = 3, I = 4, H = 6, P = variant === 'projected' ? 3 : H;
      const batchFirst = variant.startsWith('ragged');
      const x = randomTensor(batchFirst ? [N, T, I] : [T, N, I], random);
      const w = {
        wih: randomTensor([gates * H, I], random), whh: randomTensor([gates * H, P], random),
        bih: randomTensor([gates * H], random), bhh: randomTensor([gates * H], random),
        ...(variant === 'projected' ? { whr: randomTensor([P, H], random) } : {}),
      };
      const state = variant.startsWith('ragged')
        ? { h0: randomTensor([N, P], random), ...(cell === 'lstm' ? { c0: randomTensor([N, H], random) } : {}) } : {};
      const options = { cell, batchFirst, reverse: variant.startsWith('ragged'), ...(variant.startsWith('ragged') ? { lengths: [2, 5, 4] } : {}), ...state };
      const a = ops.rnn(x, w, options), b = reference.rnn(x, w, options);
      assertClose(t, a.y, b.y, { abs: 1e-5, rel: 1e-5 }, 'y');
      assertClose(t, a.hN, b.hN, { abs: 1e-5, rel: 1e-5 }, 'hN');
      const dy = randomTensor(a.y.shape, random), dhN = randomTensor(a.hN.shape, random);
      const ga = optimized.rnnBackward(a.saved, { dy, dhN }), gb = reference.rnnBackward(b.saved, { dy, dhN });
      for (const k of ['dx', 'dwih', 'dwhh', 'dbih', 'dbhh', 'dwhr', 'dh0', 'dc0'] as const) {
        t.is(ga[k] === undefined, gb[k] === undefined, k);
        if (ga[k]) assertClose(t, ga[k]!, gb[k]!, { abs: 2e-5, rel: 2e-5 }, k);
      }
      if (variant.startsWith('ragged')) {
        // Outputs past a sequence's length are 0: sequence 0 has length 2 (batch first: row 0, steps 2..4).
        const y = a.y.toArray(), width = P;
        for (let s = 2; s < T; ++s) for (let k = 0; k < width; ++k) t.is(y[(0 * T + s) * width + k], 0);
      }
    });
  }
}

test('a ragged batch gives each sequence what it gives alone (forward and reverse), in any order', (t) => {
  const random = rng(7);
  const T = 6, I = 3, H = 4;
  const w = { wih: randomTensor([4 * H, I], random), whh: randomTensor([4 * H, H], random), bih: randomTensor([4 * H], random), bhh: randomTensor([4 * H], random) };
  const lengths = [3, 6, 1];
  const x = randomTensor([T, 3, I], random);
  const xs = x.toArray();
  for (const reverse of [false, true]) {
    const batch = ops.rnn(x, w, { cell: 'lstm', reverse, lengths });
    lengths.forEach((len, b) => {
      const alone = Float32Array.from({ length: len * I }, (_, i) => xs[(Math.floor(i / I) * 3 + b) * I + (i % I)]!);
      const r = ops.rnn(Tensor.fromArray(alone, [len, 1, I]), w, { cell: 'lstm', reverse });
      const y = batch.y.toArray(), ya = r.y.toArray();
      for (let s = 0; s < len; ++s) for (let k = 0; k < H; ++k) t.true(Math.abs(y[(s * 3 + b) * H + k]! - ya[s * H + k]!) < 1e-6);
      const hN = batch.hN.toArray().slice(b * H, (b + 1) * H);
      assertClose(t, hN, r.hN.toArray(), { abs: 1e-6, rel: 1e-6 }, `hN of sequence ${b} (${reverse ? 'reverse' : 'forward'})`);
    });
  }
});

test('dropout between layers acts in training only; eval is deterministic', async (t) => {
  const lstm = createLayer(layers.lstm({ inputSize: 3, hiddenSize: 8, numLayers: 2, dropout: 0.5 }), { seed: 3 });
  const x = randomTensor([4, 2, 3], rng(1));
  const a = (await lstm.run(x)).output.toArray(), b = (await lstm.run(x)).output.toArray();
  t.deepEqual(a, b);
  const trained = (await lstm.run(x, { training: true })).output.toArray();
  t.notDeepEqual(trained, a);
});

test('a stateful ConvLSTM carries its state into the next call (detached) until resetState()', async (t) => {
  const conv = createLayer(layers.convLstm({ hidden: 2, kernel: 3, stateful: true }), { inChannels: 1, seed: 1 });
  const whole = createLayer(layers.convLstm({ hidden: 2, kernel: 3 }), { inChannels: 1, seed: 1 });
  const x = randomTensor([1, 1, 6, 5, 5], rng(2));
  const first = ops.narrow(x, 2, 0, 3), second = ops.narrow(x, 2, 3, 3);
  await conv.run(first);
  const continued = (await conv.run(second)).output;
  const expected = ops.narrow((await whole.run(x)).output, 2, 3, 3);
  assertClose(t, continued, expected, { abs: 1e-6, rel: 1e-6 }, 'two halves = one volume');
  conv.resetState();
  const fresh = (await conv.run(second)).output;
  const alone = (await whole.run(second)).output;
  assertClose(t, fresh, alone, { abs: 0, rel: 0 }, 'after resetState the state starts at zero again');
  // A batch of another size cannot continue the carried state.
  const other = randomTensor([2, 1, 3, 5, 5], rng(3));
  const error = await t.throwsAsync(conv.run(other)) as Error & { code?: string };
  t.is(error.code, 'ERR_SHAPE');
  t.regex(error.message, /resetState/);
  conv.resetState();
  t.deepEqual((await conv.run(other)).output.shape, [2, 2, 3, 5, 5]);
});

test('layers inside a model: names as a PyTorch module attribute, gradients through the tape', async (t) => {
  const model = createLayer(layers.gru({ inputSize: 2, hiddenSize: 3, bidirectional: true }));
  t.deepEqual([...model.parameters.keys()], [
    'weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0', 'weight_ih_l0_reverse', 'weight_hh_l0_reverse', 'bias_ih_l0_reverse', 'bias_hh_l0_reverse',
  ]);
  t.is(model.outChannels, 6);
  const x = randomTensor([3, 2, 2], rng(4));
  const tape = new GradientTape();
  const y = await tape.record(() => model.forward(x, { training: true, random: Math.random }));
  t.deepEqual(y.shape, [3, 2, 6]);
  const grads = await tape.backward(y, Tensor.full(y.shape, 1));
  for (const p of model.parameters.values()) t.true(grads.get(p)!.toArray().some((v) => v !== 0));
});

test('bad input: wrong sizes, lengths, states and options each give a coded error that says what to do', async (t) => {
  const lstm = createLayer(layers.lstm({ inputSize: 3, hiddenSize: 4 }));
  const x = randomTensor([5, 2, 3], rng(5));
  const expectCode = async (p: Promise<unknown>, code: string, pattern: RegExp) => {
    const e = await t.throwsAsync(p) as Error & { code?: string };
    t.is(e.code, code, e.message);
    t.regex(e.message, pattern);
  };
  await expectCode(lstm.run(randomTensor([5, 2, 4], rng(1))), 'ERR_SHAPE', /\(T, N, 3\)/);
  await expectCode(lstm.run(x, { lengths: [6, 2] }), 'ERR_ARGUMENT', /lengths in 1\.\.5/);
  await expectCode(lstm.run(x, { lengths: [3] }), 'ERR_SHAPE', /one length per sequence \(2\)/);
  await expectCode(lstm.run(x, { h0: Tensor.zeros([1, 2, 4]) }), 'ERR_ARGUMENT', /both h0 and c0/);
  await expectCode(lstm.run(x, { h0: Tensor.zeros([1, 3, 4]), c0: Tensor.zeros([1, 3, 4]) }), 'ERR_SHAPE', /h0 of shape \(1, 2, 4\)/);
  t.throws(() => layers.lstm({ inputSize: 3, hiddenSize: 4, projSize: 4 }), { message: /projSize < hiddenSize 4/ });
  t.throws(() => layers.gru({ inputSize: 3, hiddenSize: 4, projSize: 2 } as never), { message: /unknown option 'projSize'/ });
  t.throws(() => layers.rnn({ inputSize: 3, hiddenSize: 4, nonlinearity: 'sigmoid' as never }), { message: /'tanh' or 'relu'/ });
  t.throws(() => layers.convLstm({ hidden: 2, peepholes: true }), { message: /planeSize \[H, W\]/ });
  t.throws(() => ops.rnn(x, { wih: Tensor.zeros([16, 3]), whh: Tensor.zeros([16, 4]) }, { cell: 'lstm', lengths: [1, 0] }),
    { message: /lengths in 1\.\.5/ });
  t.throws(() => ops.rnn(x, { wih: Tensor.zeros([15, 3]), whh: Tensor.zeros([16, 4]) }, { cell: 'lstm' }), { message: /weight_ih of shape \(4\*hidden/ });
  t.throws(() => ops.rnn(x, { wih: Tensor.zeros([12, 3]), whh: Tensor.zeros([12, 4]) }, { cell: 'gru', c0: Tensor.zeros([2, 4]) }),
    { message: /only an LSTM has a cell state/ });
  t.throws(() => ops.rnn(x, { wih: Tensor.zeros([16, 3]), whh: Tensor.zeros([16, 4]) }, { cell: 'lstmx' as never }), { message: /options\.cell/ });
  const nan = Tensor.zeros([16, 3]);
  const data = nan.toArray();
  data[5] = Number.NaN;
  t.throws(() => ops.rnn(x, { wih: Tensor.fromArray(data, [16, 3]), whh: Tensor.zeros([16, 4]) }, { cell: 'lstm' }), { message: /weight_ih/ });
  // Nothing was lost: the layer still runs.
  t.deepEqual((await lstm.run(x)).output.shape, [5, 2, 4]);
});

test('a ConvLSTM in a layer list trains, predicts its memory, and survives a model file', async (t) => {
  const { loadModel, sequential, Trainer, VolumeSampler, estimateStepMemory } = await import('../lib');
  const os = await import('node:os');
  const model = sequential([layers.convLstm({ hidden: 3, kernel: 3, bidirectional: true, merge: 'sum' }), layers.pixelwise({ units: 2 }), layers.softmax()],
    { inChannels: 1, seed: 2 });
  const volume = Float32Array.from({ length: 6 * 12 * 12 }, (_, i) => Math.sin(i * 0.3));
  const data = new VolumeSampler({ volume, shape: [1, 6, 12, 12], labels: volume.map((v) => (v > 0 ? 1 : 0)) });
  const losses: number[] = [];
  await new Trainer(model, { loss: 'crossEntropy', optimizer: { kind: 'adam', lr: 0.03 }, seed: 1 })
    .fit({ data, size: [6, 12, 12], steps: 25, onProgress: (p) => losses.push(p.loss) });
  t.true(losses[losses.length - 1]! < losses[0]! * 0.8, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  const estimate = estimateStepMemory(model, [1, 1, 6, 12, 12])!;
  t.true(estimate.keptBytes > 2 * 6 * 12 * 12 * (1 + 6 * 3) * 4, 'the ConvLSTM planes are counted');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-rnn-')), 'convlstm.safetensors');
  model.save(file);
  const loaded = loadModel(file);
  const x = randomTensor([1, 1, 6, 12, 12], rng(9));
  assertClose(t, await loaded.predict(x), await model.predict(x), { abs: 0, rel: 0 }, 'the loaded model predicts the same');
});

test('Model.sublayer: an LSTM inside a forward-function model, named like a PyTorch attribute, with its states', async (t) => {
  const { Model } = await import('../lib');
  class Tagger extends Model {
    readonly outChannels = 2;
    private readonly lstm = this.sublayer('lstm', layers.lstm({ inputSize: 3, hiddenSize: 4, batchFirst: true }), 3);
    constructor() {
      super({ inputs: { tokens: 3 }, seed: 1 });
    }
    outputShape(shape: readonly number[] | Record<string, readonly number[]>): number[] {
      const s = shape as readonly number[];
      return [s[0]!, s[1]!, 4];
    }
    async forward(x: Tensor | Record<string, Tensor>): Promise<Tensor> {
      const r = await this.lstm.run(x as Tensor, { lengths: [3, 2] });
      r.hN.dispose();
      r.cN?.dispose();
      return r.output;
    }
  }
  const model = new Tagger();
  t.deepEqual([...model.parameters().keys()], ['lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0']);
  const x = randomTensor([2, 3, 3], rng(3));
  const tape = new GradientTape();
  const y = await tape.record(() => model.forward(x));
  const grads = model.gradientsByName(await tape.backward(y, Tensor.full(y.shape, 1)));
  t.deepEqual(grads.get('lstm.weight_ih_l0')!.shape, [16, 3]);
  t.deepEqual(y.toArray().slice(2 * 3 * 4 - 4), new Float32Array(4), 'sequence 1 (length 2) is 0 at step 2');
});

test('loadLayerState reads a state_dict file; a state of other options is refused and changes nothing', async (t) => {
  const { writeSafetensors } = await import('../lib');
  const os = await import('node:os');
  const source = createLayer(layers.gru({ inputSize: 3, hiddenSize: 4, numLayers: 2 }), { seed: 7 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-state-')), 'gru.safetensors');
  writeSafetensors(file, new Map([...source.parameters].map(([k, v]) => [k, { shape: [...v.shape], data: v.toArray() }])));
  const target = createLayer(layers.gru({ inputSize: 3, hiddenSize: 4, numLayers: 2 }), { seed: 8 });
  loadLayerState(target, file);
  const x = randomTensor([5, 2, 3], rng(4));
  assertClose(t, (await target.run(x)).output, (await source.run(x)).output, { abs: 0, rel: 0 }, 'same weights, same output');
  const other = createLayer(layers.gru({ inputSize: 3, hiddenSize: 5, numLayers: 2 }), { seed: 9 });
  const before = (await other.run(x)).output.toArray();
  const error = t.throws(() => loadLayerState(other, file)) as Error & { code?: string };
  t.is(error.code, 'ERR_SHAPE');
  t.regex(error.message, /weight_ih_l0: layer \(15, 3\) vs given \(12, 3\)/);
  t.deepEqual((await other.run(x)).output.toArray(), before, 'the refused load changed nothing');
});
