// `segvol synth --recursive`: four synthetic EM stacks laid out as the 2D-3D ConvNet
// paper's (stacks 2 and 3 to train on, stack 4 added for the recursive stage, stack 1
// held out) and a train.json of its protocol at a size a CPU trains in minutes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { syntheticEm } from '../../data/synthetic';
import { writeNpy } from '../../io/npy';
import type { FamilySynth } from '../family';

export const convnetsSynth: FamilySynth = {
  flag: { flags: '--recursive', description: 'four EM-like stacks and a train.json of the 2D-3D ConvNet paper\'s protocol (VD2D, then recursive VD2D3D)' },
  defaultSize: [8, 160, 160],
  run(o, cli) {
    const [depth, height, width] = o.size;
    fs.mkdirSync(o.out, { recursive: true });
    const stack = (i: number) => ({ volume: `stack${i}.npy`, labels: `stack${i}-membranes.npy` });
    for (let i = 1; i <= 4; ++i) {
      const em = syntheticEm({ depth, height, width, seed: o.seed * 10 + i });
      writeNpy(path.join(o.out, stack(i).volume), { shape: em.shape, data: em.image });
      writeNpy(path.join(o.out, stack(i).labels), { shape: em.shape, data: em.labels });
    }
    // The paper's schedule scaled down 300 times (60K + 30K, 90K); output patches that fit the stacks (VD2D sees 109 + 32).
    const patch = Math.max(1, Math.min(32, height - 108, width - 108));
    const config = {
      model: { preset: 'vd2d3d', recursive: true, seed: o.seed },
      data: { stacks: [stack(2), stack(3)], classNames: ['cell', 'membrane'] },
      settings: 'paper', outputSize: [1, patch, patch], steps: 300, seed: o.seed,
      checkpoint: { path: 'vd2d3d.safetensors', every: 100 },
      recursive: {
        first: { model: { preset: 'vd2d', seed: o.seed }, settings: 'paper', outputSize: [1, patch, patch], steps: 200, checkpoint: { path: 'vd2d.safetensors', every: 100 } },
        continueFirst: { steps: 100 },
        stacks: [stack(4)],
        window: [Math.min(depth, 5), Math.min(height, 128), Math.min(width, 128)],
      },
      evaluation: { stacks: [stack(1)], window: [1, Math.min(height, 128), Math.min(width, 128)], out: 'stack1-evaluation' },
    };
    fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
    cli.print(`wrote stack1..4.npy with their membrane labels (${depth}x${height}x${width}) and train.json in ${o.out}: ` +
      'VD2D on stacks 2 and 3, VD2D3D with stack 4 added, evaluated on stack 1 (the paper\'s counts divided by 300)');
  },
};
