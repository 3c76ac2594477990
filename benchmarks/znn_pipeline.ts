// The 2D-3D ConvNet paper's pipeline end to end on a synthetic EM stack: N4, VD2D,
// then VD2D3D trained recursively on the image and VD2D's boundary map, each scored
// by the best 2D Rand F-score (connected components and watershed) on held-out
// slices. `npm run bench -- pipeline` runs it at a size that takes minutes and prints
// the figures docs/convnets.md quotes; test/znn.test.ts runs it small.
import {
  metrics, predictVolume, presets, recursiveBoundaryMap, Tensor, Trainer, transferWeights, vd2dSharedLayers, VolumeSampler, znnTrainingSettings,
  type ModelBase, type Progress,
} from '../lib';
import { syntheticEm } from '../lib/data/synthetic';

export interface PipelineOptions {
  /** The synthetic stack (D, H, W); the last `heldOut` slices are only evaluated. */
  size: [number, number, number];
  heldOut: number;
  /** Output patch (in-plane) and training steps per network. */
  patch: number;
  steps: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface PipelineScores {
  network: string;
  steps: number;
  firstLoss: number;
  lastLoss: number;
  pixelError: number;
  randThreshold: number;
  randWatershed: number;
  seconds: number;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineScores[]> {
  const log = o.log ?? (() => undefined);
  const [D, H, W] = o.size;
  const em = syntheticEm({ depth: D, height: H, width: W, seed: o.seed ?? 1 });
  const plane = H * W, trainD = D - o.heldOut;
  const train = { image: em.image.slice(0, trainD * plane), labels: em.labels.slice(0, trainD * plane) };
  const test = { image: em.image.slice(trainD * plane), labels: em.labels.slice(trainD * plane) };
  // The truth's segments: cells (labels 0) per slice; membranes (1) are ignored by the Rand scores.
  const truth = metrics.connectedComponents(Uint8Array.from(test.labels, (v) => (v > 0.5 ? 0 : 1)), [o.heldOut, H, W], { connectivity: 4 }).labels;
  const results: PipelineScores[] = [];

  const trainOne = async (name: string, model: ModelBase, data: VolumeSampler, preset: 'n4' | 'vd2d' | 'vd2d3d') => {
    const settings = znnTrainingSettings(preset);
    const losses: number[] = [];
    const started = Date.now();
    // Class weights over the whole training volume, as when docs/convnets.md's table was measured (the paper's settings now weight per patch).
    await new Trainer(model, { optimizer: settings.optimizer, loss: { ...settings.loss, weightsFrom: 'global' }, seed: o.seed ?? 1 }).fit({
      data, outputSize: [1, o.patch, o.patch], steps: o.steps,  // the paper's patches are one slice thick
      onProgress: (p: Progress) => {
        losses.push(p.loss);
        if (p.step % Math.max(1, Math.floor(o.steps / 5)) === 0) log(`${name}: step ${p.step}/${o.steps}, loss ${p.loss.toFixed(4)}`);
      },
    });
    return { losses, seconds: (Date.now() - started) / 1000 };
  };

  const score = async (name: string, model: ModelBase, input: Tensor | Record<string, Tensor>, trained: { losses: number[]; seconds: number }) => {
    const probs = await predictVolume(model, input, { window: [Math.min(o.heldOut, 5), Math.min(H, 64), Math.min(W, 64)] });
    const boundary = probs.toArray().slice(o.heldOut * plane);  // class 1: membrane
    probs.dispose();
    const shape = [o.heldOut, H, W] as const;
    const s: PipelineScores = {
      network: name, steps: o.steps, firstLoss: trained.losses[0]!, lastLoss: trained.losses[trained.losses.length - 1]!,
      pixelError: metrics.pixelError(boundary, test.labels).error,
      randThreshold: metrics.bestRandFScore(boundary, truth, shape, { connectivity: 4 }).scores.fScore,
      randWatershed: metrics.bestRandFScore(boundary, truth, shape, { method: 'watershed', connectivity: 4 }).scores.fScore,
      seconds: trained.seconds,
    };
    log(`${name}: held-out pixel error ${s.pixelError.toFixed(4)}, best Rand F ${s.randThreshold.toFixed(4)} (connected components), ` +
      `${s.randWatershed.toFixed(4)} (watershed), trained in ${s.seconds.toFixed(0)} s`);
    results.push(s);
    return boundary;
  };

  const trainSampler = (flipZ: boolean) => new VolumeSampler({
    volume: train.image, shape: [1, trainD, H, W], labels: train.labels, rotate: true, flip: { z: flipZ, y: true, x: true },
  });
  const testImage = Tensor.fromArray(test.image, [1, 1, o.heldOut, H, W]);

  const n4 = presets.n4({ seed: 1 });
  await score('N4', n4, testImage, await trainOne('N4', n4, trainSampler(false), 'n4'));

  const vd2d = presets.vd2d({ seed: 2 });
  await score('VD2D', vd2d, testImage, await trainOne('VD2D', vd2d, trainSampler(false), 'vd2d'));

  // Recursive: VD2D's boundary maps of the training and held-out stacks become the second input.
  const window = [1, Math.min(H, 96), Math.min(W, 96)] as const;
  const trainMap = await recursiveBoundaryMap(vd2d, train.image, [trainD, H, W], { window });
  const testMap = await recursiveBoundaryMap(vd2d, test.image, [o.heldOut, H, W], { window });
  const vd2d3d = presets.vd2d3d({ recursive: true, seed: 3 });
  const report = transferWeights(vd2d, vd2d3d, { layers: vd2dSharedLayers });
  log(`VD2D3D starts from VD2D's ${report.transferred.length} tensors of conv1a..conv3b`);
  vd2d3d.info = { normalize: { image: 'none', boundary: 'none' } };
  const recursiveData = trainSampler(true).withInput('boundary', trainMap);
  await score('VD2D3D (recursive)', vd2d3d, { image: testImage, boundary: Tensor.fromArray(testMap, [1, 1, o.heldOut, H, W]) },
    await trainOne('VD2D3D', vd2d3d, recursiveData, 'vd2d3d'));
  return results;
}
