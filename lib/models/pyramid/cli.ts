// The PyraMiD-LSTM family's pieces of the command line: the default demo, the
// default synthetic data (an EM-like stack and a train.json), and the network
// `segvol profile` times.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseIntegerList } from '../../core/validate';
import { syntheticEm } from '../../data/synthetic';
import { writeNpy } from '../../io/npy';
import type { FamilyDemo, FamilyProfile, FamilySynth } from '../family';
import { runDemo } from './demo';
import { pyramidPresets } from './network';

const integerList = (v: string) => parseIntegerList(v, 'expected comma-separated positive integers');

export const pyramidDemo: FamilyDemo = {
  name: 'pyramid',
  description: 'a small PyraMiD-LSTM on an EM-like stack',
  defaultSeconds: 60,
  async run(o, cli) {
    cli.print(`segvol demo: synthetic EM-like stack 24x96x96 (16 slices to train, 8 held out), ` +
      `PyraMiD-LSTM network (hidden 8, 12; 5x5 filters), ${o.seconds} s of training on the CPU`);
    const bar = cli.progress('training');
    const result = await runDemo({
      seconds: o.seconds, out: o.out ?? 'segvol-demo', seed: o.seed, ...(o.precision ? { precision: o.precision } : {}),
      onProgress: (p, elapsed) => bar.update(elapsed / o.seconds, `step ${p.step}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ` +
        `${Math.round(p.voxelsPerSecond).toLocaleString('en-US')} voxels/s`),
    });
    bar.done();
    cli.print(`trained ${result.steps} steps`);
    cli.print(`pixel error on the held-out slices: ${(100 * result.pixelError).toFixed(2)}% ` +
      `(thresholding the raw input: ${(100 * result.baselinePixelError).toFixed(2)}%)`);
    cli.print('wrote:');
    for (const f of result.files) cli.print(`  ${f}`);
  },
};

export const pyramidSynth: FamilySynth = {
  defaultSize: [24, 128, 128],
  run(o, cli) {
    const [depth, height, width] = o.size;
    const em = syntheticEm({ depth, height, width, seed: o.seed });
    fs.mkdirSync(o.out, { recursive: true });
    writeNpy(path.join(o.out, 'volume.npy'), { shape: em.shape, data: em.image });
    writeNpy(path.join(o.out, 'labels.npy'), { shape: em.shape, data: em.labels });
    const config = {
      model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [8, 12], fc: [12], kernel: 5, seed: o.seed },
      data: { volume: 'volume.npy', labels: 'labels.npy', flip: { z: true, y: true, x: true }, classNames: ['cell', 'membrane'] },
      stages: [{ size: [8, 32, 32], updates: 100 }, { size: [8, 48, 48], updates: 30 }],
      loss: 'squaredError',
      optimizer: { kind: 'rmspropMomentum' },
      schedule: { kind: 'paper' },
      seed: o.seed,
      checkpoint: { path: 'model.safetensors', every: 20 },
    };
    fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
    cli.print(`wrote ${path.join(o.out, 'volume.npy')}, labels.npy and train.json (${em.shape.join('x')})`);
  },
};

export const pyramidProfile: FamilyProfile = {
  description: 'the PyraMiD-LSTM paper network',
  options: [
    { flags: '--in-channels <n>', description: 'input channels', parse: (v) => integerList(v)[0]!, default: 1 },
    { flags: '--classes <n>', description: 'classes', parse: (v) => integerList(v)[0]!, default: 2 },
    { flags: '--hidden <list>', description: 'PyraMiD-LSTM hidden units per layer', parse: integerList, default: [16, 32, 64] },
    { flags: '--fc <list>', description: 'FC units between layers', parse: integerList, default: [25, 45] },
    { flags: '--kernel <n>', description: 'filter size', parse: (v) => integerList(v)[0]!, default: 7 },
    { flags: '--size <d,h,w>', description: 'sub-volume size', parse: integerList, default: [8, 64, 64] },
  ],
  build(o) {
    const inChannels = o.inChannels as number;
    const model = pyramidPresets.pyramidNet({ inChannels, classes: o.classes as number, hidden: o.hidden as number[], fc: o.fc as number[], kernel: o.kernel as number });
    return { model, size: [1, inChannels, ...(o.size as number[])] };
  },
};
