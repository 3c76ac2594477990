// npm run bench -- step: the cost of the gradient tape and of the Trainer on a whole
// PyraMiD training step, against the hand-written backward the tape replaced.
import {
  computeLoss, ops, Optimizer, presets, Tensor, Trainer, VolumeSampler, type LossOptions, type SavedState, type Sequential,
} from '../../lib';
import { optimized } from '../../lib/testing';
import * as path from 'node:path';
import { elapsedMs, median, round, supervisedStep, type Suite } from '../common';
import { lastJsonLine, repoRoot, runCaseInChild } from '../processes';

/** The paper's loss and learning rate for the PyraMiD network's steps. */
export const paperStep = { loss: { kind: 'squaredError' } as LossOptions, lr: 1e-4 };

/**
 * The same step as segvol ran it before the tape: each layer's op and its
 * hand-written backward called directly (the paper network's layer types only).
 * The benchmark's baseline for the tape's overhead.
 */
async function handWrittenStep(model: Sequential, optimizer: Optimizer, x: Tensor, labels: Tensor): Promise<void> {
  const params = model.namedParameters();
  const p = (i: number, name: string) => params.get(`layers.${i}.${name}`)!;
  const kept: Array<{ x: Tensor; y: Tensor; saved?: SavedState }> = [];
  let current = x;
  for (let i = 0; i < model.layers.length; ++i) {
    const type = model.layers[i]!.type;
    let y: Tensor;
    let saved: SavedState | undefined;
    if (type === 'pyramidLstm') {
      const weights = [0, 1, 2, 3, 4, 5].map((d) => ({ wx: p(i, `dir${d}.wx`), bx: p(i, `dir${d}.bx`), wh: p(i, `dir${d}.wh`), bh: p(i, `dir${d}.bh`) }));
      const r = await ops.pyramidLstmAsync(current, weights);
      y = r.y;
      saved = r.saved;
    } else if (type === 'pixelwise') {
      y = ops.pixelwise(current, p(i, 'weight'), p(i, 'bias'));
    } else if (type === 'tanh') {
      y = ops.tanh(current);
    } else {
      y = ops.softmax(current);
    }
    kept.push({ x: current, y, ...(saved ? { saved } : {}) });
    current = y;
  }
  const loss = computeLoss('optimized', current, labels, { kind: 'squaredError' });
  const grads = new Map<string, Tensor>();
  let dy = loss.grad;
  for (let i = model.layers.length - 1; i >= 0; --i) {
    const type = model.layers[i]!.type;
    const k = kept[i]!;
    let dx: Tensor;
    if (type === 'pyramidLstm') {
      const g = await optimized.pyramidLstmBackwardAsync(k.saved!, dy);
      g.grads.forEach((d, j) => {
        grads.set(`layers.${i}.dir${j}.wx`, d.dwx).set(`layers.${i}.dir${j}.bx`, d.dbx).set(`layers.${i}.dir${j}.wh`, d.dwh).set(`layers.${i}.dir${j}.bh`, d.dbh);
      });
      k.saved!.dispose();
      dx = g.dx;
    } else if (type === 'pixelwise') {
      const g = optimized.pixelwiseBackward(k.x, p(i, 'weight'), dy);
      grads.set(`layers.${i}.weight`, g.dw!).set(`layers.${i}.bias`, g.db!);
      dx = g.dx!;
    } else if (type === 'tanh') {
      dx = optimized.activationBackward('tanh', k.y, k.y, dy);
    } else {
      dx = optimized.softmaxBackward(k.y, dy);
    }
    dy.dispose();
    dy = dx;
  }
  dy.dispose();
  for (const k of kept) k.y.dispose();
  optimizer.step(params, grads, 1e-4);
  for (const g of grads.values()) g.dispose();
}

/**
 * The cost of the gradient tape on a whole PyraMiD training step: the paper
 * network (C-LSTMs of 16, 32, 64 units, 7x7) on one 8x64x64 sub-volume, stepped
 * through the hand-written path the tape replaced, through trainStep without
 * its finite checks (the tape alone), and by the Trainer (drawing the window,
 * the finite checks of every activation, loss and gradient). Alternating in one
 * process, so all see the same machine load.
 */
export async function tapeOverhead(repeats: number): Promise<void> {
  const size = [8, 64, 64] as const;
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const xData = Float32Array.from({ length: 8 * 64 * 64 }, () => Math.random() * 2 - 1);
  const labelData = Float32Array.from({ length: 8 * 64 * 64 }, (_, i) => ((i * 7919) % 10 < 3 ? 1 : 0));
  const x = Tensor.fromArray(xData, [1, 1, ...size]);
  const labels = Tensor.fromArray(labelData, [1, ...size]);
  const tapeOptimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const handOptimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const trainer = new Trainer(model, { optimizer: { kind: 'rmspropMomentum', lr: paperStep.lr }, loss: 'squaredError' });
  const data = new VolumeSampler({ volume: xData, shape: [1, ...size], labels: labelData, flip: {} });
  const times = { hand: [] as number[], tape: [] as number[], trainer: [] as number[] };
  for (let i = 0; i < repeats + 1; ++i) {
    const hand = await elapsedMs(() => handWrittenStep(model, handOptimizer, x, labels));
    // The hand-written path has no finite checks: leaving them out here keeps this row the
    // tape's cost alone, and the Trainer's row carries theirs.
    const tape = await elapsedMs(() => supervisedStep(model, tapeOptimizer, x, labels, { ...paperStep, checkFinite: false }));
    const full = await elapsedMs(() => trainer.fit({ data, size, steps: 1 }));
    if (i >= 1) {
      times.hand.push(hand);
      times.tape.push(tape);
      times.trainer.push(full);
    }
  }
  const hand = median(times.hand), tape = median(times.tape), full = median(times.trainer);
  console.log(JSON.stringify({
    case: 'paper network training step on 8x64x64: hand-written backward vs gradient tape vs Trainer (tape + finite checks)',
    hand_written_ms: round(hand, 1), tape_ms: round(tape, 1), trainer_ms: round(full, 1),
    tape_overhead_ms: round(tape - hand, 1), trainer_overhead_ms: round(full - hand, 1),
  }));
  for (const t of [x, labels]) t.dispose();
  model.dispose();
}

/**
 * Trainer.fit steps of the paper network on 8x64x64 with the segvol of a checkout (this
 * one, or another with its own built addon): `steps` timed after one warm-up, in this
 * process. Only the public API is used, so an older checkout runs it as it is.
 */
async function fitSteps(root: string, steps: number): Promise<void> {
  type Lib = typeof import('../../lib');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require(path.join(path.resolve(root), 'lib')) as Lib;
  const size = [8, 64, 64] as const;
  const xData = Float32Array.from({ length: 8 * 64 * 64 }, (_, i) => Math.sin(i * 0.37));
  const labelData = Float32Array.from({ length: 8 * 64 * 64 }, (_, i) => ((i * 7919) % 10 < 3 ? 1 : 0));
  const model = lib.presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const trainer = new lib.Trainer(model, { optimizer: { kind: 'rmspropMomentum', lr: paperStep.lr }, loss: 'squaredError', seed: 1 });
  const data = new lib.VolumeSampler({ volume: xData, shape: [1, ...size], labels: labelData, flip: {} });
  await trainer.fit({ data, size, steps: 1 });
  const times: number[] = [];
  for (let i = 0; i < steps; ++i) times.push(await elapsedMs(() => trainer.fit({ data, size, steps: 1 })));
  console.log(JSON.stringify({ root, trainer_ms: median(times) }));
  model.dispose();
}

/**
 * A Trainer.fit step here against the same step in a baseline checkout (--baseline DIR, a
 * worktree of an earlier commit with its addon built): rounds alternate the two, each in
 * a fresh process, so both see the same machine; the medians of the rounds' medians.
 */
function againstBaseline(baseline: string, rounds: number): void {
  const medians = { here: [] as number[], baseline: [] as number[] };
  for (let r = 0; r < rounds; ++r) {
    for (const [key, root] of [['here', repoRoot], ['baseline', baseline]] as const) {
      const out = runCaseInChild(`Trainer.fit step (${key})`, 'step', ['fit', root, '3']);
      if (out === null) return;
      medians[key].push(lastJsonLine<{ trainer_ms: number }>(out).trainer_ms);
    }
  }
  const here = median(medians.here), base = median(medians.baseline);
  console.log(JSON.stringify({
    case: `paper network Trainer.fit step on 8x64x64: this checkout vs ${baseline} (${rounds} alternating rounds of 3 steps)`,
    trainer_ms: round(here, 1), baseline_ms: round(base, 1), change_percent: round((100 * (here - base)) / base, 2),
    rounds: medians,
  }));
}

/** The training step's overhead alone (also the last case of the pyramid suite); --baseline DIR compares Trainer.fit with a checkout. */
export const step: Suite = {
  name: 'step',
  run: async ({ repeats, value }) => {
    if (value('--case') === 'fit') return fitSteps(value('--case', 2)!, Number(value('--case', 3)));
    const baseline = value('--baseline');
    if (baseline) return againstBaseline(baseline, Math.max(repeats, 1));
    return tapeOverhead(repeats);
  },
};
