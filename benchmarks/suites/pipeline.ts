// npm run bench -- pipeline [--steps N] [--patch P] [--size d,h,w]: the 2D-3D ConvNet paper's
// pipeline on a synthetic EM stack (benchmarks/znn_pipeline.ts): N4, VD2D, then VD2D3D
// trained recursively; held-out pixel error and best Rand F-scores. The defaults (300 steps,
// 32x32 patches, 24x160x160) take minutes; docs/convnets.md quotes them.
import type { Suite } from '../common';
import { runPipeline } from '../znn_pipeline';

export const pipeline: Suite = {
  name: 'pipeline',
  async run({ value }) {
    const size = (value('--size') ?? '24,160,160').split(',').map(Number) as [number, number, number];
    const scores = await runPipeline({
      size, heldOut: 6, patch: Number(value('--patch') ?? 32), steps: Number(value('--steps') ?? 300), log: (line) => console.error(line),
    });
    for (const s of scores) console.log(JSON.stringify({ case: `${s.network} on a synthetic ${size.join('x')} stack (6 held-out slices)`, ...s }));
  },
};
