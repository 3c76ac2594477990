// ops.lstmCell (one fused LSTM step) against the same step composed from element-wise
// ops, forward and every gradient through a tape; the reference backend; bad input.
import test from 'ava';
import { GradientTape, ops, Tensor, type LstmCellOptions } from '../lib';
import { reference } from '../lib/testing';
import { assertClose, randomTensor, rng } from './helpers';

/** The step from ten ops, as the consistent ConvLSTM computed it before the fused op. */
function composed(pre: Tensor, options: LstmCellOptions): { h: Tensor; c: Tensor } {
  const o4 = pre.shape[1]! / 4;
  const sum = options.recurrent ? ops.add(pre, options.recurrent) : pre;
  const gate = (k: number) => ops.narrow(sum, 1, k * o4, o4);
  const i = ops.sigmoid(gate(0)), f = ops.sigmoid(gate(1)), g = ops.tanh(gate(2)), o = ops.sigmoid(gate(3));
  const c = options.cPrev ? ops.add(ops.mul(f, options.cPrev), ops.mul(i, g)) : ops.mul(i, g);
  return { h: ops.mul(o, ops.tanh(c)), c };
}

const shapes: { name: string; pre: number[] }[] = [
  { name: 'planes (2, 4*3, 5, 6)', pre: [2, 12, 5, 6] },
  { name: 'dense (4, 4*8)', pre: [4, 32] },
  { name: 'one frame (1, 4*16, 9, 9)', pre: [1, 64, 9, 9] },
];

for (const s of shapes) {
  for (const withRecurrent of [false, true]) {
    for (const withCell of [false, true]) {
      test(`lstmCell equals the composed step and its gradients: ${s.name}, recurrent ${withRecurrent}, cPrev ${withCell}`, async (t) => {
        const random = rng(7 + s.pre.length * 10 + (withRecurrent ? 2 : 0) + (withCell ? 1 : 0));
        const cellShape = [s.pre[0]!, s.pre[1]! / 4, ...s.pre.slice(2)];
        const pre = randomTensor(s.pre, random);
        const recurrent = withRecurrent ? randomTensor(s.pre, random) : undefined;
        const cPrev = withCell ? randomTensor(cellShape, random) : undefined;
        const dh = randomTensor(cellShape, random), dc = randomTensor(cellShape, random);
        const options = { ...(recurrent ? { recurrent } : {}), ...(cPrev ? { cPrev } : {}) };
        const run = async (step: typeof composed) => {
          const tape = new GradientTape();
          for (const x of [pre, recurrent, cPrev]) if (x) tape.watch(x);
          const r = await tape.record(async () => step(pre, options));
          const grads = await tape.backward([r.h, r.c], [dh, dc]);
          return { r, grads, tape };
        };
        const fused = await run((p, o) => ops.lstmCell(p, o));
        const plain = await run(composed);
        const tol = { abs: 2e-6, rel: 2e-5 };
        assertClose(t, fused.r.h, plain.r.h, tol, 'h');
        assertClose(t, fused.r.c, plain.r.c, tol, 'c');
        for (const [name, x] of [['pre', pre], ['recurrent', recurrent], ['cPrev', cPrev]] as const) {
          if (!x) continue;
          t.truthy(fused.grads.get(x), `a gradient for ${name}`);
          assertClose(t, fused.grads.get(x)!, plain.grads.get(x)!, tol, `gradient of ${name}`);
        }
        // Not a constant output: the gradient of pre carries every gate.
        t.true(fused.grads.get(pre)!.toArray().some((v) => Math.abs(v) > 1e-3));
        for (const run of [fused, plain]) run.tape.dispose();
      });
    }
  }
}

test('lstmCell: the reference backend agrees with the optimized one, forward and gradients', async (t) => {
  const random = rng(3);
  const pre = randomTensor([2, 8, 4, 4], random), recurrent = randomTensor([2, 8, 4, 4], random), cPrev = randomTensor([2, 2, 4, 4], random);
  const dh = randomTensor([2, 2, 4, 4], random), dc = randomTensor([2, 2, 4, 4], random);
  const run = async (lstmCell: typeof ops.lstmCell) => {
    const tape = new GradientTape();
    for (const x of [pre, recurrent, cPrev]) tape.watch(x);
    const r = await tape.record(async () => lstmCell(pre, { recurrent, cPrev }));
    return { r, grads: await tape.backward([r.h, r.c], [dh, dc]) };
  };
  const a = await run(ops.lstmCell), b = await run(reference.lstmCell);
  const tol = { abs: 1e-6, rel: 1e-5 };
  assertClose(t, a.r.h, b.r.h, tol, 'h');
  assertClose(t, a.r.c, b.r.c, tol, 'c');
  for (const x of [pre, recurrent, cPrev]) assertClose(t, a.grads.get(x)!, b.grads.get(x)!, tol, 'gradient');
});

test('lstmCell: bad shapes are refused with ERR_SHAPE, saying what was expected', (t) => {
  const pre = Tensor.zeros([1, 6, 3, 3]);
  const e1 = t.throws<Error & { code?: string }>(() => ops.lstmCell(pre));
  t.is(e1?.code, 'ERR_SHAPE');
  t.regex(e1!.message, /\(N, 4\*O, \.\.\.\).*received \(1, 6, 3, 3\)/);
  const good = Tensor.zeros([1, 8, 3, 3]);
  const e2 = t.throws<Error & { code?: string }>(() => ops.lstmCell(good, { cPrev: Tensor.zeros([1, 2, 3, 4]) }));
  t.is(e2?.code, 'ERR_SHAPE');
  t.regex(e2!.message, /cPrev of shape \(1, 2, 3, 3\).*received \(1, 2, 3, 4\)/);
  const e3 = t.throws<Error & { code?: string }>(() => ops.lstmCell(good, { recurrent: Tensor.zeros([1, 8, 3, 2]) }));
  t.is(e3?.code, 'ERR_SHAPE');
  // The inputs are untouched by a refused call.
  t.deepEqual([...good.toArray()].every((v) => v === 0), true);
});
