// npm run bench -- shapes: a fast path must hold across the shapes users run, not only
// the headline table's. 3x3 'same' 2D convolutions (the ConvLSTM's recurrent and input
// convolutions, U-Net layers), forward + backward-data + backward-weights, over channel
// counts 1 -> 16 and 4 to 64 in = out, batch 1, 2 and 4, and planes 64, 128 and 256,
// against PyTorch on the same shapes and threads. After the table it prints the
// "cliffs": a case whose GFLOP/s is under half that of a smaller neighbour (one step
// down in channels, batch or plane size, which has no more arithmetic per output),
// which is how a fast path that covers one shape and not the next shows itself.
import { report, round, type Suite } from '../common';
import { runPeer } from '../processes';
import { timeConv, type ConvCase } from './conv';

interface ShapeCase extends ConvCase {
  batch: number;
  channels: number;
  plane: number;
}

const channelSteps = [1, 4, 8, 16, 32, 64];
const batches = [1, 2, 4];
const planes = [64, 128, 256];

function cases(): ShapeCase[] {
  const all: ShapeCase[] = [];
  for (const channels of channelSteps) {
    for (const batch of batches) {
      for (const plane of planes) {
        // One input channel stands for a network's first layer: 1 -> 16.
        const out = channels === 1 ? 16 : channels;
        all.push({ name: `3x3 C=${channels} O=${out} N=${batch} ${plane}x${plane}`, x: [batch, channels, plane, plane], w: [out, channels, 3, 3], padding: 1, batch, channels, plane });
      }
    }
  }
  return all;
}

const flopsOf = (c: ShapeCase) => 3 * 2 * c.x[0]! * c.w[0]! * c.w[1]! * 9 * c.plane * c.plane;

export const shapes: Suite = {
  name: 'shapes',
  defaultRepeats: 3,
  async run({ repeats }) {
    const list = cases();
    const peer = runPeer({ suite: 'conv', repeats, cases: list.map(({ name, x, w, padding }) => ({ name, x, w, padding })) });
    const rate = new Map<string, number>();
    const ratios: number[] = [];
    for (const c of list) {
      const ms = await timeConv(c, repeats);
      const torchMs = peer(c.name)?.torch_ms ?? null;
      report(c.name, ms, torchMs, flopsOf(c));
      rate.set(c.name, flopsOf(c) / ms / 1e6);
      if (torchMs !== null) ratios.push(torchMs / ms);
    }
    const key = (channels: number, batch: number, plane: number) => list.find((c) => c.channels === channels && c.batch === batch && c.plane === plane);
    const cliffs: string[] = [];
    for (const c of list) {
      const smaller = [
        key(channelSteps[channelSteps.indexOf(c.channels) - 1] ?? -1, c.batch, c.plane),
        key(c.channels, batches[batches.indexOf(c.batch) - 1] ?? -1, c.plane),
        key(c.channels, c.batch, planes[planes.indexOf(c.plane) - 1] ?? -1),
      ].filter((n): n is ShapeCase => n !== undefined && n.channels !== 1 && c.channels !== 1);
      for (const n of smaller) {
        if (rate.get(c.name)! < 0.5 * rate.get(n.name)!) cliffs.push(`${c.name}: ${round(rate.get(c.name)!, 1)} GFLOP/s against ${round(rate.get(n.name)!, 1)} at ${n.name}`);
      }
    }
    ratios.sort((a, b) => a - b);
    console.log(JSON.stringify({
      summary: 'shapes', cases: list.length, ratio_min: round(ratios[0] ?? NaN, 2), ratio_median: round(ratios[Math.floor(ratios.length / 2)] ?? NaN, 2),
      ratio_max: round(ratios.at(-1) ?? NaN, 2), cliffs,
    }));
  },
};
