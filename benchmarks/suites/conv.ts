// npm run bench -- conv: the convolutions segvol's networks spend their time in, forward +
// backward-data + backward-weights, against PyTorch's on the same shapes and threads.
import { ops, Tensor } from '../../lib';
import { optimized } from '../../lib/testing';
import { randomTensor, report, timeOnDevice, type Suite } from '../common';
import { runPeer } from '../processes';

export interface ConvCase {
  name: string;
  /** Input (N, C, ...spatial). */
  x: number[];
  /** Weights (O, C, ...kernel). */
  w: number[];
  /** 'same' padding for the kernel. */
  padding: number;
}

/** Forward + backward-data + backward-weights multiply-adds, as FLOPs. */
function convFlops(c: ConvCase): number {
  const spatialOut = c.x.slice(2).reduce((a, b) => a * b, 1);  // 'same' padding
  const kernel = c.w.slice(2).reduce((a, b) => a * b, 1);
  return 3 * 2 * c.x[0]! * c.w[0]! * c.w[1]! * kernel * spatialOut;
}

/** Milliseconds of one forward + both backward convolutions of `c` (padding keeps the output size). */
export async function timeConv(c: ConvCase, repeats: number): Promise<number> {
  const x = randomTensor(c.x);
  const w = randomTensor(c.w);
  const dy = Tensor.full([c.x[0]!, c.w[0]!, ...c.x.slice(2)], 1);  // 'same' padding: output size = input size
  const ms = await timeOnDevice(() => {
    const y = ops.conv(x, w, { padding: c.padding });
    const g = optimized.convBackward(x, w, dy, { padding: c.padding }, { bias: false });
    return () => { for (const t of [y, g.dx!, g.dw!]) t.dispose(); };
  }, repeats);
  for (const t of [x, w, dy]) t.dispose();
  return ms;
}

export const conv: Suite = {
  name: 'conv',
  async run({ repeats }) {
    // The shapes of a PyraMiD-LSTM direction's batched input convolution (planes as batch)
    // and of a 3D ConvNet layer.
    const cases: ConvCase[] = [
      { name: 'conv2d 7x7 C=5 O=64, 8 planes 64x64', x: [8, 5, 64, 64], w: [64, 5, 7, 7], padding: 3 },
      { name: 'conv2d 7x7 C=25 O=128, 8 planes 64x64', x: [8, 25, 64, 64], w: [128, 25, 7, 7], padding: 3 },
      { name: 'conv2d 7x7 C=32 O=128, 1 plane 64x64 (recurrent step)', x: [1, 32, 64, 64], w: [128, 32, 7, 7], padding: 3 },
      { name: 'conv3d 3x3x3 C=16 O=16, 16x64x64', x: [1, 16, 16, 64, 64], w: [16, 16, 3, 3, 3], padding: 1 },
    ];
    const peer = runPeer({ suite: 'conv', repeats, cases });
    for (const c of cases) report(c.name, await timeConv(c, repeats), peer(c.name)?.torch_ms ?? null, convFlops(c));
  },
};
