// npm run bench -- metrics: overlap and Rand/VI scores of an EM-sized segmentation against
// scikit-image (benchmarks/peer_metrics.py).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { metrics as measures } from '../../lib';
import { writeNpy } from '../../lib/io/npy';
import { timeOnDevice, versus, type Suite } from '../common';
import { runPython } from '../processes';

/**
 * A 30x512x512 volume of ~2,000 blocky segments with membranes (label 0) between them, and a
 * prediction whose blocks are offset and resized, so it both merges and splits the truth's.
 */
function segmentations(depth: number, height: number, width: number): { truth: Int32Array; pred: Int32Array } {
  const truth = new Int32Array(depth * height * width);
  const pred = new Int32Array(depth * height * width);
  for (let z = 0; z < depth; ++z)
    for (let y = 0; y < height; ++y)
      for (let x = 0; x < width; ++x) {
        const i = (z * height + y) * width + x;
        truth[i] = (y % 24 === 0 || x % 24 === 0) ? 0 : 1 + Math.floor(y / 24) * 32 + Math.floor(x / 24) + z * 1024;
        pred[i] = 1 + Math.floor((y + 7) / 36) * 32 + Math.floor(x / 18) + z * 1024;
      }
  return { truth, pred };
}

export const metrics: Suite = {
  name: 'metrics',
  async run({ repeats }) {
    const [D, H, W] = [30, 512, 512];
    const { truth, pred } = segmentations(D, H, W);
    const classes = 2;
    const predClass = Int32Array.from(pred, (v) => v % classes);
    const truthClass = Int32Array.from(truth, (v) => v % classes);
    const segvolMs = await timeOnDevice(() => {
      measures.overlap(predClass, truthClass, classes);
      measures.rand(pred, truth);
    }, repeats, { warmup: 1 });
    const dir = fs.mkdtempSync(`${os.tmpdir()}/segvol-bench-`);
    writeNpy(`${dir}/pred.npy`, { shape: [D, H, W], data: Float32Array.from(pred) });
    writeNpy(`${dir}/truth.npy`, { shape: [D, H, W], data: Float32Array.from(truth) });
    const r = runPython('peer_metrics.py', [`${dir}/pred.npy`, `${dir}/truth.npy`, String(classes)]);
    fs.rmSync(dir, { recursive: true });
    const peerMs = 'stdout' in r ? (JSON.parse(r.stdout.trim()) as { peer_ms: number }).peer_ms : null;
    if ('error' in r) console.error(`scikit-image peer unavailable: ${r.error}`);
    console.log(JSON.stringify({ case: 'overlap (2 classes) + Rand scores + VI on 30x512x512', ...versus(segvolMs, peerMs, 1, 'skimage'), target_ms: 2000 }));
  },
};
