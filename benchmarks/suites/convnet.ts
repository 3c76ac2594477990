// npm run bench -- convnet [--smoke]: training throughput of the 2D-3D ConvNets (issue 14)
// against the same dense nets in PyTorch (dilated convolutions, stride-1 max-pooling,
// autograd, SGD), each network in its own process, with peak memory.
import { Optimizer, presets, Tensor, znnTrainingSettings } from '../../lib';
import { znnGraph } from '../../lib/models/convnets/networks';
import { measureSteps, peakMemoryColumns, randomTensor, supervisedStep, versus, type StepMeasurement, type Suite } from '../common';
import { lastJsonLine, runCaseInChild, runPeer } from '../processes';

export type ConvnetName = 'n4' | 'vd2d3d';

/** What a convnet case prints: its measurement, its shapes and the graph the peer rebuilds. */
interface ConvnetMeasurement extends StepMeasurement {
  outSize: number[];
  inSize: number[];
  graph: { inputs: Record<string, number>; nodes: unknown[]; output: string };
}

/**
 * Steps of one network in this process at the paper's output patch: SGD 0.01 with
 * momentum 0.9, cross-entropy normalised by voxels.
 */
async function convnetCase(name: ConvnetName, repeats: number, smoke: boolean): Promise<void> {
  const model = name === 'n4' ? presets.n4({ seed: 1 }) : presets.vd2d3d({ recursive: true, seed: 1 });
  const outSize = smoke ? [1, 4, 4] : znnTrainingSettings(name).outputSize;
  const fov = model.fieldOfView()!;
  const inSize = outSize.map((o, a) => o + fov[a]! - 1);
  // Each of the model's inputs (1, 1, ...inSize); labels (1, ...outSize).
  const inputs = Object.fromEntries(Object.keys(model.inputs).map((k) => [k, randomTensor([1, 1, ...inSize])]));
  const labels = Tensor.fromArray(Float32Array.from({ length: outSize.reduce((a, b) => a * b, 1) }, (_, i) => (i * 7919) % 3 === 0 ? 1 : 0), [1, ...outSize]);
  const optimizer = new Optimizer({ kind: 'sgd', lr: 0.01, momentum: 0.9 });
  const input = Object.keys(inputs).length === 1 ? Object.values(inputs)[0]! : inputs;
  const measured = await measureSteps(() => supervisedStep(model, optimizer, input, labels, { loss: { kind: 'crossEntropy', normalize: 'voxels' }, lr: 0.01, checkFinite: false }), repeats);
  const graph = znnGraph(name, name === 'vd2d3d' ? { recursive: true } : {});
  console.log(JSON.stringify({ case: name, ...measured, outSize, inSize, graph }));
}

/**
 * One network's row: its steps in a child process (its peak RSS is its own), then the peer's
 * in its own Python process; null when the child failed (the error row is printed).
 */
export function convnetRow(name: ConvnetName, repeats: number, smoke: boolean): Record<string, unknown> | null {
  const printed = runCaseInChild(name, 'convnet', [name, '--repeats', String(repeats), ...(smoke ? ['--smoke'] : [])]);
  if (printed === null) return null;
  const segvol = lastJsonLine<ConvnetMeasurement>(printed);
  const peer = smoke ? null
    : runPeer({ suite: 'convnet', repeats, cases: [{ name, ...segvol.graph, inSize: segvol.inSize, outSize: segvol.outSize }] })(name);
  const voxels = segvol.outSize.reduce((a, b) => a * b, 1);
  return {
    case: `${name} training step, output ${segvol.outSize.join('x')} (input ${segvol.inSize.join('x')})`,
    ...versus(segvol.segvol_ms, peer?.torch_ms, 1),
    segvol_voxels_per_s: Math.round((voxels * 1000) / segvol.segvol_ms), torch_voxels_per_s: peer ? Math.round((voxels * 1000) / peer.torch_ms) : null,
    ...peakMemoryColumns(segvol, peer), target_ratio: 1, gflop: segvol.gflop,
  };
}

/** Output voxels per second of N4 (output 200x200x1) and of VD2D3D with its recursive stream (100x100x1). --smoke: tiny outputs, no peer. */
export const convnet: Suite = {
  name: 'convnet',
  async run({ repeats, has, value }) {
    const smoke = has('--smoke');
    const one = value('--case');
    if (one !== undefined) {
      await convnetCase(one as ConvnetName, repeats, smoke);
      return;
    }
    for (const name of ['n4', 'vd2d3d'] as const) {
      const row = convnetRow(name, repeats, smoke);
      if (row !== null) console.log(JSON.stringify(row));
    }
  },
};
