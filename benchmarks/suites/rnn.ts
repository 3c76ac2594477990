// npm run bench -- rnn: the recurrent layers against PyTorch CPU in the same run (issue 13).
import { createLayer, GradientTape, layers, Tensor } from '../../lib';
import { randomTensor, timeOnDevice, versus, type Suite } from '../common';
import { runPeer } from '../processes';

/**
 * LSTM and GRU (sequence 100, batch 16, hidden 256, 2 layers) and a ConvLSTM over 16 slices
 * of 64x64 (16 input channels, hidden 32, 3x3).
 */
export const rnnCases = [
  { name: 'lstm: T=100, N=16, I=256, H=256, 2 layers', kind: 'lstm', x: [100, 16, 256], inputSize: 256, hiddenSize: 256, numLayers: 2 },
  { name: 'gru: T=100, N=16, I=256, H=256, 2 layers', kind: 'gru', x: [100, 16, 256], inputSize: 256, hiddenSize: 256, numLayers: 2 },
  { name: 'convLstm: 16 slices of 64x64, C=16, hidden 32, 3x3, N=1', kind: 'convLstm', x: [1, 16, 16, 64, 64], hidden: 32, kernel: 3 },
] as const;

export type RnnCase = (typeof rnnCases)[number];

/** Median ms of forward + backward of the input and every weight on a tape (awaited), the output's gradient all ones. */
export async function timeRnn(c: RnnCase, repeats: number): Promise<number> {
  const layer = c.kind === 'convLstm'
    ? createLayer(layers.convLstm({ hidden: c.hidden, kernel: c.kernel }), { inChannels: c.x[1] })
    : createLayer((c.kind === 'lstm' ? layers.lstm : layers.gru)({ inputSize: c.inputSize, hiddenSize: c.hiddenSize, numLayers: c.numLayers }));
  const x = randomTensor(c.x);
  const dy = Tensor.full(layer.outputShape(c.x, c.kind), 1);  // made once, as the peer's
  const ms = await timeOnDevice(async () => {
    const tape = new GradientTape();
    tape.watch(x);
    const y = await tape.record(() => layer.forward(x, { training: true, random: Math.random }));
    const grads = await tape.backward(y, dy);
    return () => {
      for (const g of grads.values()) g.dispose();
      y.dispose();
      tape.dispose();
    };
  }, repeats);
  dy.dispose();
  x.dispose();
  return ms;
}

export const rnn: Suite = {
  name: 'rnn',
  async run({ repeats }) {
    const peer = runPeer({ suite: 'rnn', repeats, cases: rnnCases });
    for (const c of rnnCases) {
      console.log(JSON.stringify({ case: c.name, ...versus(await timeRnn(c, repeats), peer(c.name)?.torch_ms, 1), target_ratio: 1 }));
    }
  },
};
