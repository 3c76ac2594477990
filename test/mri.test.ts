// Tseng et al.'s cross-modality ConvLSTM encoder-decoder (seed 001): the preset's
// shapes and parameter count, the CMC layer and the whole network against the PyTorch
// reference (test/fixtures/make_mri_fixtures.py), and its options' errors.
import * as path from 'node:path';
import test from 'ava';
import {
  createLayer, GradientTape, layers, loadLayerState, ops, presets, readSafetensors, Tensor, type NamedArray,
} from '../lib';
import { assertClose } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'mri');

function fixture(name: string): { tensors: Map<string, NamedArray>; meta: Record<string, unknown> } {
  const file = readSafetensors(path.join(dir, `${name}.safetensors`));
  return { tensors: file.tensors, meta: JSON.parse(file.metadata.case!) as Record<string, unknown> };
}

function tensorOf(a: NamedArray): Tensor {
  return Tensor.fromArray(a.data, a.shape);
}

/**
 * The paper's network at its defaults, counted by hand from section 3 (4 modalities,
 * 64 channels at each of 4 levels, 3x3 kernels, 5 classes; convolutions before a batch
 * norm have no bias):
 *   encoders  4 x [ (64*1*9 + 2*64) + 3 * (64*64*9 + 2*64) ]   = 4 x 111,680 = 446,720
 *   CMC       4 levels x (64*64*4 + 64)                         = 65,792
 *   ConvLSTM  4*64*64*9 (input) + 4*64*64*9 (hidden) + 2*4*64   = 295,424
 *   decoder   4 x (64*64*2*2 up + 64*64*9 conv + 2*64 bn)       = 213,504
 *   classifier 5*64 + 5                                          = 325
 *   total                                                        = 1,021,765
 */
test('the preset at the paper\'s settings: layer shapes and a parameter count made by hand', (t) => {
  const model = presets.crossModalityConvLstm();
  const shapes = new Map([...model.parameters()].map(([k, v]) => [k, v.shape.join('x')]));
  const count = [...model.parameters().values()].reduce((n, p) => n + p.size, 0);
  const byHand = 4 * (64 * 1 * 9 + 2 * 64 + 3 * (64 * 64 * 9 + 2 * 64)) + 4 * (64 * 64 * 4 + 64) + (2 * 4 * 64 * 64 * 9 + 2 * 4 * 64) +
    4 * (64 * 64 * 4 + 64 * 64 * 9 + 2 * 64) + (5 * 64 + 5);
  t.is(byHand, 1_021_765);
  t.is(count, byHand);
  t.is(shapes.get('encoders.3.0.conv.weight'), '64x1x1x3x3');
  t.is(shapes.get('encoders.0.3.conv.weight'), '64x64x1x3x3');
  t.is(shapes.get('cmc.2.weight'), '64x64x4x1x1');
  t.is(shapes.get('convlstm.weight_ih_l0'), '256x64x3x3');
  t.is(shapes.get('decoder.0.up.weight'), '64x64x1x2x2');
  t.is(shapes.get('classifier.weight'), '5x64x1x1x1');
  t.false(shapes.has('encoders.4.0.conv.weight'));
  t.deepEqual(model.inputs, { input: 4 });
  t.deepEqual(model.outputShape([3, 4, 3, 240, 240]), [3, 5, 3, 240, 240]);
  // The buffers: running statistics of 16 encoder and 4 decoder batch norms.
  t.is([...model.state().keys()].filter((k) => k.endsWith('running_mean')).length, 20);
  // The ConvLSTM starts orthogonal (Saxe et al.), with zero biases.
  const w = model.parameters().get('convlstm.weight_hh_l0')!.toArray();
  const rows = 256, cols = 64 * 9;
  let offDiagonal = 0;
  for (const [a, b] of [[0, 1], [5, 200], [17, 255]] as const) {
    let dot = 0;
    for (let k = 0; k < cols; ++k) dot += w[a * cols + k]! * w[b * cols + k]!;
    offDiagonal = Math.max(offDiagonal, Math.abs(dot));
  }
  t.true(offDiagonal < 1e-5, `rows of an orthogonal weight are orthogonal (|dot| ${offDiagonal})`);
  let norm = 0;
  for (let k = 0; k < cols; ++k) norm += w[3 * cols + k]! ** 2;
  t.true(Math.abs(norm - 1) < 1e-4 && rows < cols, `unit rows (${norm})`);
  t.true(model.parameters().get('convlstm.bias_ih_l0')!.toArray().every((v) => v === 0));
  model.dispose();
});

test('the variants of Table 1 and 3 differ where the paper says', (t) => {
  const count = (o: Parameters<typeof presets.crossModalityConvLstm>[0]) => {
    const m = presets.crossModalityConvLstm(o);
    const names = [...m.parameters().keys()];
    const n = [...m.parameters().values()].reduce((s, p) => s + p.size, 0);
    m.dispose();
    return { names, n };
  };
  const full = count({});
  const noLstm = count({ convLstm: false });
  const stacked = count({ multiModal: false, convLstm: false, fusion: 'none' });
  t.is(full.n - noLstm.n, 295_424, 'the ConvLSTM alone');
  t.false(noLstm.names.some((k) => k.startsWith('convlstm')));
  t.false(stacked.names.some((k) => k.startsWith('cmc.') || k.startsWith('encoders.1.')));
  t.is(stacked.n, (64 * 4 * 9 + 2 * 64 + 3 * (64 * 64 * 9 + 2 * 64)) + 4 * (64 * 64 * 4 + 64 * 64 * 9 + 2 * 64) + 325);
  // MRF adds no weights (multiplication, not concatenation).
  t.is(count({ fusion: 'none' }).n, full.n);
});

test('the cross-modality convolution equals Conv3d with a (M, 1, 1) kernel on stacked modalities', async (t) => {
  const { tensors, meta } = fixture('cmc');
  const x = tensorOf(tensors.get('x')!);
  const layer = createLayer(layers.crossModality({ modalities: meta.modalities as number, out: meta.out as number }), { inChannels: x.shape[1] });
  t.deepEqual(layer.parameters.get('weight')!.shape, tensors.get('weight')!.shape);
  loadLayerState(layer, new Map([['weight', tensors.get('weight')!], ['bias', tensors.get('bias')!]]));
  x.requiresGrad = true;
  const tape = new GradientTape();
  const dy = tensorOf(tensors.get('dy')!);
  let y!: Tensor;
  await tape.record(async () => {
    y = await layer.forward(x, { training: true, random: Math.random });
  });
  assertClose(t, y, tensors.get('out.y')!.data, { abs: 1e-5, rel: 1e-5 }, 'y');
  const grads = await tape.backward(y, dy);
  assertClose(t, grads.get(x)!, tensors.get('grad.x')!.data, { abs: 1e-5, rel: 1e-5 }, 'dx');
  assertClose(t, grads.get(layer.parameters.get('weight')!)!, tensors.get('grad.weight')!.data, { abs: 1e-4, rel: 1e-5 }, 'dweight');
  assertClose(t, grads.get(layer.parameters.get('bias')!)!, tensors.get('grad.bias')!.data, { abs: 1e-4, rel: 1e-5 }, 'dbias');
  t.throws(() => createLayer(layers.crossModality({ modalities: 4 }), { inChannels: 10 }), { message: /10 channels, not a multiple of 4 modalities/ });
});

for (const name of ['net_mme_cmc_mrf_convlstm', 'net_stacked_no_lstm_relu']) {
  test(`the whole network in training mode matches the PyTorch reference: ${name}`, async (t) => {
    const { tensors, meta } = fixture(name);
    const model = presets.crossModalityConvLstm(meta.options as Parameters<typeof presets.crossModalityConvLstm>[0]);
    const state = new Map([...tensors].filter(([k]) => k.startsWith('state.')).map(([k, v]) => [k.slice('state.'.length), v]));
    model.loadState(state);
    const input = tensorOf(tensors.get('input')!);
    const labels = tensorOf(tensors.get('labels')!);
    const classWeights = tensorOf(tensors.get('classWeights')!);
    const tape = new GradientTape();
    let probs!: Tensor;
    const loss = await tape.record(async () => {
      probs = await model.forward(input, { training: true });
      return ops.loss(probs, labels, { kind: 'crossEntropy', classWeights });
    });
    assertClose(t, probs, tensors.get('out.probs')!.data, { abs: 2e-5, rel: 1e-4 }, 'probabilities');
    assertClose(t, loss, tensors.get('out.loss')!.data, { abs: 1e-5, rel: 1e-5 }, 'loss');
    const grads = model.gradientsByName(await tape.backward(loss));
    let checked = 0;
    for (const [k, g] of grads) {
      const expected = tensors.get(`grad.${k}`);
      if (!expected) {
        t.fail(`no golden gradient for ${k}`);
        continue;
      }
      assertClose(t, g, expected.data, { abs: 2e-5, rel: 2e-3 }, `d ${k}`);
      ++checked;
    }
    t.is(checked, [...tensors.keys()].filter((k) => k.startsWith('grad.')).length);
    for (const [k, v] of tensors) {
      if (!k.startsWith('after.')) continue;
      assertClose(t, model.state().get(k.slice('after.'.length))!, v.data, { abs: 1e-5, rel: 1e-4 }, k);
    }
    model.dispose();
  });
}

test('the preset refuses planes the poolings cannot halve, and unknown options', async (t) => {
  const model = presets.crossModalityConvLstm({ channels: 4 });
  t.throws(() => model.outputShape([1, 4, 3, 100, 96]), { message: /plane 100x96 must be a multiple of 16/ });
  t.throws(() => model.outputShape([1, 4, 3, 32, 32]), { message: /leaves 2x2 after 4 poolings, smaller than the ConvLSTM's 3x3 kernel/ });
  t.throws(() => model.outputShape([4, 3, 48, 48]), { message: /batch axis is missing/ });
  const x = Tensor.zeros([1, 3, 2, 48, 48]);
  await t.throwsAsync(() => model.forward(x), { message: /expected \(N, 4, D, H, W\)/ });
  t.throws(() => presets.crossModalityConvLstm({ channels: [8, 8] }), { message: /expected 4 channel counts/ });
  t.throws(() => presets.crossModalityConvLstm({ kernel: 4 }), { message: /odd kernel/ });
  t.throws(() => presets.crossModalityConvLstm({ fusion: 'concat' as 'none' }), { message: /fusion 'multiply' or 'none'/ });
  t.throws(() => presets.crossModalityConvLstm({ sequence: 3 } as never), { message: /unknown option 'sequence'/ });
  x.dispose();
  model.dispose();
});
