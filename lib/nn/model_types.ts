// What models are given and what they record: inputs, run options, the info a model
// file carries (pre-processing, channels, classes), its architecture, and the
// services (tensor files, pre-processing) the layers above lib/nn install.
import { SegvolError } from '../core/errors';
import type { NonFinitePolicy } from '../core/non_finite';
import type { Normalization } from '../core/normalization';
import type { Tensor } from '../core/tensor';
import type { LayerSpec, MemorySchedule } from './layer';

/** A named tensor's values as a file stores them (safetensors, a state_dict). */
export interface StateArray {
  shape: number[];
  data: Float32Array;
}

/**
 * @internal What models need from the layers above lib/nn: tensor files (safetensors)
 * and the pre-processing their info records. lib/models installs them when it loads
 * (every public entry point loads it).
 */
export interface ModelServices {
  readTensors(file: string): ReadonlyMap<string, StateArray>;
  writeTensors(file: string, tensors: ReadonlyMap<string, StateArray>, metadata: Record<string, string>): void;
  /** The recorded pre-processing; with nonFinite 'zero', NaN and infinities are skipped by its statistics and set to 0 after it. */
  preprocess(data: Float32Array, shape: readonly number[], mode: Normalization, options?: { nonFinite?: NonFinitePolicy }): Float32Array;
}
let services: ModelServices | undefined;

/** @internal */
export function setModelServices(s: ModelServices): void {
  services = s;
}

/** @internal */
export function modelServices(): ModelServices {
  if (!services) throw new SegvolError('ERR_NATIVE', 'model files and pre-processing are not loaded: import segvol (its index), not lib/nn alone');
  return services;
}

/** A model's input: one tensor (single-input models) or tensors by input name. */
export type ModelInput = Tensor | Readonly<Record<string, Tensor>>;
/** Input shapes: one shape (single-input models) or shapes by input name. */
export type ModelInputShape = readonly number[] | Readonly<Record<string, readonly number[]>>;

export interface RunOptions {
  /** Training mode: batch statistics, dropout. Default: the model's mode (model.train() / model.eval()). */
  training?: boolean;
  /** Memory against time for a training pass (see MemorySchedule). */
  schedule?: MemorySchedule;
}

export interface PredictOptions {
  /** Apply the pre-processing recorded in model.info (default true); false: the input is already pre-processed. */
  preprocess?: boolean;
  /**
   * Inputs holding NaN or infinities: 'error' (default) refuses them with ERR_NON_FINITE, naming how
   * many and where; 'zero' sets them to 0 after pre-processing (whose statistics skip them).
   */
  nonFinite?: NonFinitePolicy;
}

/** What applying a model needs besides its weights; model files record it. */
export interface ModelInfo {
  /**
   * The pre-processing raw volumes need (predict, segment and predictVolume apply it): per-slice
   * z-scores, the MR pipeline, or none; one for every input, or one per input name (a recursive
   * net's boundary map is fed as it is: { image: 'slice', boundary: 'none' }).
   */
  normalize?: Normalization | Record<string, Normalization>;
  /** The channels of each input, in order (an MR model's modalities: { input: ['flair', 't1', 't1ce', 't2'] }). */
  channels?: Record<string, string[]>;
  /** Class names; the index is the class id. */
  classes?: string[];
  /** Voxel spacing (z, y, x) of the training data. */
  spacing?: [number, number, number];
  /** The input window (d, h, w) it was trained on. */
  window?: [number, number, number];
  description?: string;
}

/** How a model file rebuilds a model. */
export type Architecture =
  | { kind: 'preset'; preset: string; options: object }
  | { kind: 'sequential'; inChannels: number; seed: number; layers: LayerSpec[] }
  | { kind: 'graph'; inputs: Record<string, number>; nodes: Array<{ name: string; layer: LayerSpec; input: string } | { name: string; join: string; inputs: string[] }>;
    outputs: string[]; seed: number }
  | { kind: 'custom'; name: string; options?: object };

/** The format written in a model file's metadata (key segvol.model). */
export const modelFileFormat = 'segvol-model-1';

/** Where a dense network's output window sits in its input window. */
export interface OutputWindow {
  /** Spatial size of the output. */
  size: number[];
  /** Offset of the output's first voxel in the input, per spatial axis (0 for 'same'-padded nets). */
  offset: number[];
}

/** The pre-processing a model records for one of its inputs. */
export function normalizationOf(info: ModelInfo, input: string): Normalization {
  const n = info.normalize;
  if (n === undefined) return 'none';
  return typeof n === 'string' ? n : n[input] ?? 'none';
}

