// The PyraMiD-LSTM layer: six C-LSTMs (+/- D, H, W) over the volume, summed.
// One fused op on the tape, its gradient the fused native backward.
import { SegvolError } from '../../core/errors';
import type { Tensor } from '../../core/tensor';
import { ops } from '../../ops';
import type { Initializer } from '../../nn/init';
import {
  initializerOption, parameter, shapeError, type ForwardMode, type Layer, type LayerBuilder, type LayerMemory, type MemorySchedule,
} from '../../nn/layer';
import { positiveIntegerField } from '../../core/validate';

/**
 * The sizes of the scan groups native/ops/clstm.cpp forms for a volume (N, C, D, H, W):
 * the +/- pair of an axis always shares a scan shape (T, A, B), and pairs of different
 * axes join while the group stays within the limit. The default limit is the
 * backend's: 6 on CUDA; on the CPU the pair below 8 input channels, else 1.
 */
export function scanGroupSizes(shape: readonly number[], limit: number): number[] {
  const spatial = shape.slice(2);
  const scanShape = (axis: number) => [spatial[axis], ...spatial.filter((_, a) => a !== axis)].join('x');
  if (limit < 2) return [1, 1, 1, 1, 1, 1];
  const groups: Array<{ shape: string; size: number }> = [];
  for (let axis = 0; axis < 3; ++axis) {
    const joined = groups.find((g) => g.shape === scanShape(axis) && g.size + 2 <= limit);
    if (joined) joined.size += 2;
    else groups.push({ shape: scanShape(axis), size: 2 });
  }
  return groups.map((g) => g.size);
}

export function defaultScanGroupLimit(device: 'cpu' | 'cuda', inputChannels: number): number {
  return device === 'cuda' ? 6 : inputChannels < 8 ? 2 : 1;
}

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
  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    // Off the tape (inference) the layer keeps no planes; on it, the op keeps what its backward needs.
    const s = mode.schedule;
    const r = await ops.pyramidLstmAsync(x, this.weights(), {
      keepForBackward: false, ...(s?.recompute ? { recompute: true } : {}), ...(s?.scanGroups ? { scanGroups: s.scanGroups } : {}),
    });
    r.saved.dispose();
    return r.y;
  }
  describe() {
    return `hidden ${this.outChannels}, kernel ${this.kernel}x${this.kernel}, 6 directions`;
  }
  /**
   * Planes kept per direction: gates (4O), c and h (O each), or c and h only when backward
   * recomputes the gates. Transients (per scan group of G directions, see clstm.cpp):
   * forward the stacked input (G C), the gates when not kept (G 4O), the unstacking
   * (G O + O when grouped) and one direction's h in volume layout (O); backward the
   * re-laid input and output gradient, the gate gradients, the input gradient in scan
   * layout (G (2C + 5O)), its unstacking (G C + C when grouped) and volume copy (C).
   */
  memory(input: readonly number[], schedule: MemorySchedule, device: 'cpu' | 'cuda'): LayerMemory {
    const c = this.inChannels, o = this.outChannels;
    const voxels = input.reduce((a, b) => a * b, 1) / c;
    const groups = scanGroupSizes(input, schedule.scanGroups ?? defaultScanGroupLimit(device, c));
    const g = Math.max(...groups);
    const recompute = schedule.recompute ?? false;
    return {
      keepsInput: true, keepsOutput: false,
      saved: 6 * (recompute ? 2 : 6) * o * voxels,
      forward: (g * c + (recompute ? 4 * g * o : 0) + (g > 1 ? g * o + o : 0) + o) * voxels,
      backward: (g * (2 * c + 5 * o) + (g > 1 ? g * c + c : 0) + c) * voxels,
    };
  }
}

export const pyramidLayers = {
  /** PyraMiD-LSTM: six C-LSTMs (+/- D, H, W), outputs summed. */
  pyramidLstm(options: PyramidLstmOptions): LayerBuilder {
    const hidden = positiveIntegerField(options.hidden, 'pyramidLstm', 'hidden');
    const kernel = positiveIntegerField(options.kernel ?? 7, 'pyramidLstm', 'kernel');
    if (kernel % 2 === 0) {
      throw new SegvolError('ERR_ARGUMENT', `pyramidLstm: expected an odd kernel ('same' padding), received ${kernel}`);
    }
    const init = initializerOption(options.init, { kind: 'uniform', scale: options.initScale ?? 0.1 }, 'pyramidLstm');
    return { type: 'pyramidLstm', options: { ...options }, build: (c) => new PyramidLstmLayer(c.inChannels, hidden, kernel, c.random, init) };
  },
};
