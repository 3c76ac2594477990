// npm run bench -- brats [--channels N] [--smoke]: Tseng et al.'s cross-modality ConvLSTM
// (issue 15), one training step at the paper's settings against the same network in
// PyTorch (test/fixtures/cross_modality_reference.py), each in its own process.
import { Optimizer, presets, Tensor } from '../../lib';
import { measureSteps, peakMemoryColumns, randomTensor, supervisedStep, versus, type StepMeasurement, type Suite } from '../common';
import { lastJsonLine, runCaseInChild, runPeer } from '../processes';

/**
 * Steps of Tseng et al.'s network in this process: forward in training mode, weighted
 * cross-entropy, backward, Adam (the paper's step); its peak memory is its own.
 */
async function bratsCase(repeats: number, smoke: boolean, channels: number): Promise<void> {
  const plane = smoke ? 48 : 240;
  const model = presets.crossModalityConvLstm({ channels, seed: 1 });
  // (batch 3, 4 modalities, 3 slices, plane, plane); labels (batch, slices, plane, plane) in 0..4
  const x = randomTensor([3, 4, 3, plane, plane]);
  const labels = Tensor.fromArray(Float32Array.from({ length: 3 * 3 * plane * plane }, (_, i) => Math.floor((i * 7919) / 8) % 5), [3, 3, plane, plane]);
  const classWeights = Tensor.fromArray([0.1, 2, 1, 3, 1.5], [5]);
  const optimizer = new Optimizer({ kind: 'adam', lr: 1e-4 });
  const measured = await measureSteps(() => supervisedStep(model, optimizer, x, labels, { loss: { kind: 'crossEntropy', classWeights }, lr: 1e-4, checkFinite: false }), repeats);
  console.log(JSON.stringify({ ...measured, plane }));
}

/**
 * The row of the step at `channels`: segvol in a child process, then the peer in its own
 * Python process (each peak RSS its own); null when the child failed (the error row is printed).
 */
export function bratsRow(repeats: number, smoke: boolean, channels: number): Record<string, unknown> | null {
  const printed = runCaseInChild('brats', 'brats', ['--repeats', String(repeats), '--channels', String(channels), ...(smoke ? ['--smoke'] : [])]);
  if (printed === null) return null;
  const segvol = lastJsonLine<StepMeasurement & { plane: number }>(printed);
  const peer = smoke ? null : runPeer({ suite: 'brats', repeats, cases: [{ name: 'brats', plane: segvol.plane, channels }] })('brats');
  return {
    case: `cross-modality ConvLSTM training step, batch 3 x 3 slices x ${segvol.plane}x${segvol.plane}, 4 modalities, ${channels} channels, Adam`,
    ...versus(segvol.segvol_ms, peer?.torch_ms, 1), ...peakMemoryColumns(segvol, peer), target_ratio: 1, gflop: segvol.gflop,
  };
}

/**
 * Batch 3, sequences of 3 slices, 240x240, 4 modalities, 64 channels, Adam, with peak memory.
 * --channels N narrows it; --smoke: 48x48, no peer.
 */
export const brats: Suite = {
  name: 'brats',
  async run({ repeats, has, value }) {
    const channels = Number(value('--channels') ?? 64);
    const smoke = has('--smoke');
    if (has('--case')) {
      await bratsCase(repeats, smoke, channels);
      return;
    }
    const row = bratsRow(repeats, smoke, channels);
    if (row !== null) console.log(JSON.stringify(row));
  },
};
