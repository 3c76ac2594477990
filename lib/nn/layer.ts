// What a layer is: parameters (trainable, requiresGrad), buffers (saved, not
// trained), a shape rule and a forward function. Gradients come from the ops the
// forward function calls (lib/autograd); no layer writes a backward pass.
import { SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { checkInitializer, initialize, type Initializer } from './init';

export interface BuildContext {
  inChannels: number;
  /** Draws for initialisers (seeded by the model). */
  random: () => number;
}

/** How a training forward pass trades memory for time (chosen by the memory planner, lib/training/memory.ts). */
export interface MemorySchedule {
  /** Recurrent layers keep h and c only and recompute their gates in backward. */
  recompute?: boolean;
  /** The most directions a PyraMiD-LSTM layer scans together (1..6). */
  scanGroups?: number;
}

/** How a forward pass runs: training (batch statistics, dropout) or inference. */
export interface ForwardMode {
  training: boolean;
  /** Draws for dropout masks (the model's generator, saved in checkpoints). */
  random: () => number;
  schedule?: MemorySchedule;
}

/** What a layer holds during a training step, in floats, beyond its output (see lib/training/memory.ts). */
export interface LayerMemory {
  /** The tape keeps the layer's input, or its output, for the gradient. */
  keepsInput: boolean;
  keepsOutput: boolean;
  /** Other state kept for backward (a recurrent layer's planes). */
  saved: number;
  /** The most extra memory its forward and its backward hold at once (besides input, output and their gradients). */
  forward: number;
  backward: number;
}

export interface Layer {
  readonly type: string;
  readonly outChannels: number;
  /** Trainable parameters by name relative to the layer (e.g. "dir0.wx", "weight"). */
  readonly parameters: Map<string, Tensor>;
  /** State saved with the weights but not trained (batch norm's running statistics). */
  readonly buffers?: Map<string, Tensor>;
  /** The output shape for an input shape; throws ERR_SHAPE naming the layer path and both shapes. */
  outputShape(input: readonly number[], path: string): number[];
  forward(x: Tensor, mode: ForwardMode): Promise<Tensor>;
  /** One line for summary(): the options. */
  describe(): string;
  /** The layer's memory in a training step for this input shape (default: keeps its input, nothing else). */
  memory?(input: readonly number[], schedule: MemorySchedule, device: 'cpu' | 'cuda'): LayerMemory;
}

export interface LayerBuilder<L extends Layer = Layer> {
  /** The builder's name in `layers` (layers[type](options) makes the same builder again). */
  readonly type: string;
  /** The options it was given, as plain data: model files store them to rebuild the layer. */
  readonly options: object;
  /** The input channels or features the layer needs, when its options fix them (a recurrent layer's inputSize). */
  readonly inChannels?: number;
  build(context: BuildContext): L;
}

/** A layer as model files store it. */
export interface LayerSpec {
  type: string;
  options: object;
}

/** A trainable tensor: initialised values, requiresGrad set. */
export function parameter(shape: number[], init: Initializer, random: () => number): Tensor {
  const t = Tensor.fromArray(initialize(init, shape, random), shape);
  t.requiresGrad = true;
  return t;
}

/** The initialiser a layer option names, checked when the layer is declared. */
export function initializerOption(init: Initializer | undefined, fallback: Initializer, where: string): Initializer {
  const chosen = init ?? fallback;
  checkInitializer(chosen, where);
  return chosen;
}

export function shapeError(path: string, type: string, expected: string, shape: readonly number[]): SegvolError {
  return new SegvolError('ERR_SHAPE', `${path} (${type}): expected ${expected}, received (${shape.join(', ')})`);
}
