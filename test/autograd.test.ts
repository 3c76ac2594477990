// The gradient tape: every differentiable op's gradient through the tape (against
// its explicit backward and finite differences of the reference ops), coverage of
// every op declared differentiable, and the tape's own rules (sums for reuse,
// frees after backward, no recording outside record() or inside noGrad, frozen
// parameters, concurrent tapes, errors).
import test from 'ava';
import {
  differentiableOps, GradientTape, isRecording, layers, Model, noGrad, ops, sequential, Tensor,
  type ModelInput, type ModelInputShape, type RunOptions,
} from '../lib';
import { optimized, reference } from '../lib/testing';
import { opCases } from './cases';
import { checkTape } from './harness';
import { assertClose, modelGradients, randomArray, rng } from './helpers';

const covered = new Set<string>();

for (const c of opCases) {
  test.serial(`tape: ${c.name}`, async (t) => {
    for (const op of await checkTape(t, c, optimized, reference)) covered.add(op);
  });
}

test.serial('every op declared differentiable has a gradient check through the tape', (t) => {
  const missing = differentiableOps().filter((op) => !covered.has(op));
  t.deepEqual(missing, [], `no tape case records ${missing.join(', ')}`);
  t.true(differentiableOps().length >= 20, `only ${differentiableOps().length} ops declared`);
});

test('the reference ops give the same tape gradients as the optimized ops', async (t) => {
  for (const c of opCases.filter((k) => k.finiteDifference)) await checkTape(t, c, reference, reference, 9);
});

test('a tensor used twice gets the sum of both gradients; backward frees what the tape saved', async (t) => {
  const x = Tensor.fromArray([0.5, -1, 2, 0.25], [1, 1, 2, 2]);
  const tape = new GradientTape();
  tape.watch(x);
  // y = x * x + tanh(x): dy/dx = 2x + 1 - tanh(x)^2
  const y = await tape.record(() => {
    const sq = ops.mul(x, x);
    const th = ops.tanh(x);
    sq.dispose();  // the tape keeps its own views: disposing intermediates is safe
    const s = ops.add(ops.mul(x, x), th);
    th.dispose();
    return s;
  });
  t.deepEqual(tape.ops, ['mul', 'tanh', 'mul', 'add']);
  const g = (await tape.backward(y, Tensor.full([1, 1, 2, 2], 1))).get(x)!.toArray();
  const expected = [0.5, -1, 2, 0.25].map((v) => 2 * v + 1 - Math.tanh(v) ** 2);
  assertClose(t, g, Float32Array.from(expected), { abs: 1e-6, rel: 1e-6 }, 'dx');
  const again = await t.throwsAsync(tape.backward(y, Tensor.full([1, 1, 2, 2], 1))) as Error & { code?: string };
  t.is(again.code, 'ERR_ARGUMENT');
  t.regex(again.message, /already ran backward and freed what it saved/);
  tape.dispose();
  await t.throwsAsync(tape.record(() => ops.tanh(x)), { code: 'ERR_DISPOSED' } as never);
});

test('ops outside record(), inside noGrad, or on untracked tensors are not taped', async (t) => {
  const w = Tensor.fromArray([1, 2], [2, 1]);
  w.requiresGrad = true;
  const x = Tensor.fromArray([3, 4, 5], [1, 1, 1, 1, 3]);
  ops.pixelwise(x, w).dispose();  // no tape at all
  const tape = new GradientTape();
  await tape.record(async () => {
    t.true(isRecording());
    ops.tanh(x).dispose();  // x is not tracked: nothing to differentiate
    await noGrad(async () => {
      t.false(isRecording());
      ops.pixelwise(x, w).dispose();
    });
    ops.pixelwise(x, w).dispose();
  });
  t.false(isRecording());
  t.deepEqual(tape.ops, ['pixelwise']);
  tape.dispose();
});

test('backward of an untracked output, or with a seed of the wrong shape, is refused', async (t) => {
  const x = Tensor.fromArray([1, 2, 3, 4], [1, 1, 2, 2]);
  const tape = new GradientTape();
  const y = await tape.record(() => ops.tanh(x));
  const err = await t.throwsAsync(tape.backward(y)) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /does not depend on any tensor that needs a gradient/);
  tape.watch(x);
  const z = await tape.record(() => ops.tanh(x));
  await t.throwsAsync(tape.backward(z), { message: /has shape \(1, 1, 2, 2\); give its gradient/ });
  await t.throwsAsync(tape.backward(z, Tensor.zeros([4])), { message: /the seed of output 0 has shape \(4\), the output \(1, 1, 2, 2\)/ });
  tape.dispose();
});

test('frozen parameters (requiresGrad false) get no gradient and cost no weight-gradient work', async (t) => {
  const model = sequential([layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same' }), layers.tanh(), layers.pixelwise({ units: 2 })],
    { inChannels: 1, seed: 1 });
  model.parameters().get('layers.0.weight')!.requiresGrad = false;
  model.parameters().get('layers.0.bias')!.requiresGrad = false;
  const x = Tensor.fromArray(randomArray(2 * 25, rng(1)), [1, 1, 2, 5, 5]);
  const { grads } = await modelGradients(model, x, randomArray(2 * 2 * 25, rng(2)));
  t.deepEqual([...grads.keys()].sort(), ['layers.2.bias', 'layers.2.weight']);
  model.to('cpu');
  t.false(model.parameters().get('layers.0.weight')!.requiresGrad, 'moving the model keeps the flag');
});

test('two tapes recording concurrently do not see each other\'s ops', async (t) => {
  const model = sequential([layers.conv({ out: 2, kernel: [1, 3, 3] }), layers.relu()], { inChannels: 1, seed: 3 });
  const a = new GradientTape(), b = new GradientTape();
  const x = Tensor.fromArray(randomArray(4 * 36, rng(4)), [1, 1, 4, 6, 6]);
  const [ya, yb] = await Promise.all([
    a.record(() => model.forward(x)),
    b.record(async () => ops.tanh(await model.forward(x))),
  ]);
  t.deepEqual(a.ops, ['conv', 'relu']);
  t.deepEqual(b.ops, ['conv', 'relu', 'tanh']);
  const ga = await a.backward(ya, Tensor.full(ya.shape, 1));
  t.is(ga.size, 2);
  a.dispose();
  b.dispose();
  t.is(yb.shape.join(), ya.shape.join());
});

// A model written as a forward function only: a convolutional recurrence over the
// slices (D) of a volume, h_t = tanh(conv(x_t) + conv(h_{t-1})), built from narrow,
// concat and the layers; no backward pass written anywhere.
class SliceRecurrence extends Model {
  readonly outChannels = 2;
  private readonly input = this.layer('input', layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'xavier' }), 1);
  private readonly recur = this.layer('recur', layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], bias: false, init: 'orthogonal' }), 3);
  private readonly head = this.layer('head', layers.pixelwise({ units: 2 }), 3);
  constructor(seed: number) {
    super({ inputs: { image: 1 }, seed });
  }
  outputShape(shape: ModelInputShape): number[] {
    const s = this.inputShapes(shape).get('image')!;
    return [s[0]!, 2, ...s.slice(2)];
  }
  async forward(x: ModelInput, options?: RunOptions): Promise<Tensor> {
    const mode = this.mode(options);
    const image = this.single(x);
    const hs: Tensor[] = [];
    let h: Tensor | undefined;
    for (let z = 0; z < image.shape[2]!; ++z) {
      const slice = ops.narrow(image, 2, z, 1);
      const a = await this.input(slice, mode);
      const pre = h ? ops.add(a, await this.recur(h, mode)) : a;
      h = ops.tanh(pre);
      hs.push(h);
    }
    return ops.softmax(await this.head(ops.concat(hs, 2), mode));
  }
}

test('a model written as a forward function (a recurrence over slices) has the gradients of finite differences', async (t) => {
  const model = new SliceRecurrence(2);
  t.deepEqual([...model.parameters().keys()], ['input.weight', 'input.bias', 'recur.weight', 'head.weight', 'head.bias']);
  const shape = [1, 1, 3, 4, 4];
  const data = randomArray(48, rng(5));
  const r = randomArray(2 * 48, rng(6));
  const { dx, grads } = await modelGradients(model, Tensor.fromArray(data, shape), r);
  const loss = async (input: Float32Array) => (await model.predict(Tensor.fromArray(input, shape))).toArray().reduce((s, v, i) => s + v * r[i]!, 0);
  const analytic = dx.toArray();
  for (const i of [0, 17, 33, 47]) {
    const plus = Float32Array.from(data), minus = Float32Array.from(data);
    plus[i]! += 1e-2;
    minus[i]! -= 1e-2;
    const numeric = ((await loss(plus)) - (await loss(minus))) / 2e-2;
    t.true(Math.abs(numeric - analytic[i]!) < 1e-3 + 1e-2 * Math.abs(numeric), `dx[${i}] ${analytic[i]} vs ${numeric}`);
  }
  // The recurrent weight's gradient, entry by entry, against finite differences.
  const w = model.parameters().get('recur.weight')!;
  const values = w.toArray();
  const g = grads.get('recur.weight')!.toArray();
  for (const i of [0, 13, 40, 80]) {
    const at = async (v: number) => {
      const copy = Float32Array.from(values);
      copy[i] = v;
      model.parameters().get('recur.weight')!.dispose();
      (model as unknown as { registered: Array<[string, { parameters: Map<string, Tensor> }]> }).registered[1]![1].parameters
        .set('weight', Tensor.fromArray(copy, w.shape));
      return loss(data);
    };
    const numeric = ((await at(values[i]! + 1e-2)) - (await at(values[i]! - 1e-2))) / 2e-2;
    await at(values[i]!);
    t.true(Math.abs(numeric - g[i]!) < 1e-3 + 1e-2 * Math.abs(numeric), `dW[${i}] ${g[i]} vs ${numeric}`);
  }
});
