// The PyraMiD-LSTM layer: six C-LSTMs (+/- D, H, W) over the volume, summed.
// One fused op on the tape, its gradient the fused native backward.
import { SegvolError } from '../core/errors';
import type { Tensor } from '../core/tensor';
import { ops } from '../ops';
import type { Initializer } from './init';
import { initializerOption, parameter, positiveInteger, shapeError, type Layer, type LayerBuilder } from './layer';

export interface PyramidLstmOptions {
  /** O, hidden units per direction. */
  hidden: number;
  /** Odd filter size of the 2D convolutions (the paper: 7). */
  kernel?: number;
  /** Weights and biases start as U(-initScale, initScale) (the paper: 0.1). */
  initScale?: number;
  /** Or any initialiser, for every weight and bias of the six C-LSTMs. */
  init?: Initializer;
}

class PyramidLstmLayer implements Layer {
  readonly type = 'pyramidLstm';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, random: () => number,
    init: Initializer) {
    const o4 = 4 * outChannels;
    for (let d = 0; d < 6; ++d) {
      this.parameters.set(`dir${d}.wx`, parameter([o4, inChannels, kernel, kernel], init, random));
      this.parameters.set(`dir${d}.bx`, parameter([o4], init, random));
      this.parameters.set(`dir${d}.wh`, parameter([o4, outChannels, kernel, kernel], init, random));
      this.parameters.set(`dir${d}.bh`, parameter([o4], init, random));
    }
  }
  private weights() {
    return [0, 1, 2, 3, 4, 5].map((d) => ({
      wx: this.parameters.get(`dir${d}.wx`)!, bx: this.parameters.get(`dir${d}.bx`)!,
      wh: this.parameters.get(`dir${d}.wh`)!, bh: this.parameters.get(`dir${d}.bh`)!,
    }));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    const small = shape.slice(2).filter((s) => s < this.kernel);
    if (shape.length !== 5 || small.length > 0 || shape[1] !== this.inChannels) {
      throw shapeError(path, 'pyramidLstm', `a volume (N, ${this.inChannels}, D, H, W) with every spatial axis >= the kernel ${this.kernel}`, shape);
    }
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }
  async forward(x: Tensor): Promise<Tensor> {
    // Off the tape (inference) the layer keeps no planes; on it, the op keeps what its backward needs.
    const r = await ops.pyramidLstmAsync(x, this.weights(), { keepForBackward: false });
    r.saved.dispose();
    return r.y;
  }
  describe() {
    return `hidden ${this.outChannels}, kernel ${this.kernel}x${this.kernel}, 6 directions`;
  }
}

export const pyramidLayers = {
  /** PyraMiD-LSTM: six C-LSTMs (+/- D, H, W), outputs summed. */
  pyramidLstm(options: PyramidLstmOptions): LayerBuilder {
    const hidden = positiveInteger(options.hidden, 'pyramidLstm', 'hidden');
    const kernel = positiveInteger(options.kernel ?? 7, 'pyramidLstm', 'kernel');
    if (kernel % 2 === 0) {
      throw new SegvolError('ERR_ARGUMENT', `pyramidLstm: expected an odd kernel ('same' padding), received ${kernel}`);
    }
    const init = initializerOption(options.init, { kind: 'uniform', scale: options.initScale ?? 0.1 }, 'pyramidLstm');
    return { type: 'pyramidLstm', options: { ...options }, build: (c) => new PyramidLstmLayer(c.inChannels, hidden, kernel, c.random, init) };
  },
};
