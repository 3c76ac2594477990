// `segvol train`'s evaluation: after training, each held-out stack of config.evaluation
// is predicted whole (stitched windows) and scored by its pixel error; with out, the
// class probabilities (all, and one file per class) and the model's other inputs are
// written there as .npy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { predictVolume } from '../inference/predict_volume';
import { writeNpy } from '../io/npy';
import type { CliContext, PaperSettings, TrainingPreparation } from '../models/family';
import type { ModelBase } from '../nn/model';
import { loadHeldOutStacks, type TrainConfig } from './config';

/** The fraction of voxels (mask 0 left out) whose most probable class is not their label. probs: (K, D, H, W). */
function pixelError(probs: Float32Array, classes: number, labels: Float32Array, mask?: Float32Array): { error: number; voxels: number } {
  const n = labels.length;
  let wrong = 0, counted = 0;
  for (let i = 0; i < n; ++i) {
    if (mask && mask[i] === 0) continue;
    let best = 0;
    for (let k = 1; k < classes; ++k) if (probs[k * n + i]! > probs[best * n + i]!) best = k;
    if (best !== labels[i]) ++wrong;
    ++counted;
  }
  return { error: counted ? wrong / counted : 0, voxels: counted };
}

export async function evaluateStacks(model: ModelBase, config: TrainConfig, baseDir: string, settings: PaperSettings | undefined,
  inputsFor: TrainingPreparation['inputsFor'], cli: CliContext): Promise<void> {
  const e = config.evaluation!;
  const out = e.out ? path.resolve(baseDir, e.out) : undefined;
  if (out) fs.mkdirSync(out, { recursive: true });
  const stacks = loadHeldOutStacks(config, baseDir, e.stacks, 'evaluation.stacks', settings);
  const names = Object.keys(model.inputs);
  for (const [i, stack] of stacks.entries()) {
    const [c, d, h, w] = stack.volume.shape as [number, number, number, number];
    const dims = [d, h, w] as const;
    const volume = e.stacks[i]!.volume;
    const file = path.basename(Array.isArray(volume) ? volume[0]! : volume);
    const what = `evaluation stack ${i} (${file})`;
    const extra = inputsFor ? await inputsFor(stack.volume.data, dims, what) : {};
    const image = names.find((n) => !(n in extra));
    if (!image) throw new SegvolError('ERR_ARGUMENT', `evaluation: the model's inputs (${names.join(', ')}) leave none for the image`);
    const inputs: Record<string, Tensor> = {};
    for (const name of names) inputs[name] = name === image ? Tensor.fromArray(stack.volume.data, [1, c, d, h, w]) : Tensor.fromArray(extra[name]!, [1, 1, d, h, w]);
    const window = (e.window ?? model.info.window ?? [1, 256, 256]).map((s, a) => Math.min(s, dims[a]!)) as [number, number, number];
    const bar = cli.progress(`predicting ${what}`);
    let probs: Float32Array;
    try {
      const p = await predictVolume(model, inputs, { window, onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`) });
      probs = p.toArray();
      p.dispose();
    } finally {
      for (const t of Object.values(inputs)) t.dispose();
      bar.done();
    }
    const classes = model.outChannels;
    const { error, voxels } = pixelError(probs, classes, stack.labels, stack.mask);
    cli.print(`${what}: pixel error ${error.toFixed(4)} over ${voxels.toLocaleString('en-US')} voxels`);
    if (out) {
      const stem = path.join(out, `${i}-${file.replace(/\.(nii\.gz|nii|tiff?|npy|png)$/i, '')}`);
      writeNpy(`${stem}.probabilities.npy`, { shape: [classes, d, h, w], data: probs });
      // One (D, H, W) file per class: what segvol evaluate takes (class 1 of an EM model is its boundary map).
      for (let k = 0; k < classes; ++k) writeNpy(`${stem}.class${k}.npy`, { shape: [d, h, w], data: probs.subarray(k * d * h * w, (k + 1) * d * h * w) });
      for (const [name, values] of Object.entries(extra)) writeNpy(`${stem}.${name}.npy`, { shape: [d, h, w], data: values });
    }
  }
  if (out) cli.print(`evaluation: probabilities (and the model's other inputs) written to ${out}`);
}
