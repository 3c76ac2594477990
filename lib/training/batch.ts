// A training batch: N drawn windows stacked along a new batch axis, on the
// model's device, and their labels cut to whichever output window a network
// produces ('valid' networks' outputs are smaller than their inputs).
import type { SampledWindow, Size3 } from '../data/samplers';
import { SegvolError } from '../core/errors';
import { Tensor, type Device } from '../core/tensor';
import { ops } from '../ops';
import { targetChannels, windowTargets, type TargetKind } from './targets';

/** Stacks (C, d, h, w) windows into (N, C, d, h, w). */
function stack(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Voxels [offset, offset + size) of each axis of a (N, d, h, w) array. */
export function cropWindow(data: Float32Array, n: number, from: Size3, offset: readonly number[], size: readonly number[]): Float32Array {
  const [d, h, w] = from;
  const [od, oh, ow] = size as [number, number, number];
  const [z0, y0, x0] = offset as [number, number, number];
  if (od === d && oh === h && ow === w) return data;
  const out = new Float32Array(n * od * oh * ow);
  for (let b = 0; b < n; ++b)
    for (let z = 0; z < od; ++z)
      for (let y = 0; y < oh; ++y) {
        const src = ((b * d + z0 + z) * h + y0 + y) * w + x0;
        out.set(data.subarray(src, src + ow), ((b * od + z) * oh + y) * ow);
      }
  return out;
}

export class Batch {
  /** Each input as (N, C, d, h, w), on the model's device. */
  readonly inputs: Record<string, Tensor>;
  /** Windows in the batch. */
  readonly count: number;
  /** The input window (d, h, w). */
  readonly size: Size3;
  private readonly labelData: Float32Array;
  private readonly maskData: Float32Array | undefined;
  private readonly cut = new Map<string, { labels: Tensor; mask: Tensor | undefined }>();
  private readonly computed = new Map<string, { values: Tensor; mask: Tensor | undefined }>();

  /** names maps each model input to the data source's input of that window. */
  constructor(windows: readonly SampledWindow[], size: Size3, channels: Readonly<Record<string, number>>,
    names: ReadonlyMap<string, string>, private readonly device: Device) {
    this.count = windows.length;
    this.size = size;
    const [d, h, w] = size;
    this.inputs = {};
    for (const [modelName, dataName] of names) {
      this.inputs[modelName] = Tensor.fromArray(stack(windows.map((s) => s.inputs[dataName]!)), [this.count, channels[dataName]!, d, h, w], { device });
    }
    this.labelData = stack(windows.map((s) => s.labels));
    const masks = windows.map((s) => s.mask);
    this.maskData = masks.every((m) => m !== undefined) ? stack(masks as Float32Array[]) : undefined;
    if (masks.some((m) => m !== undefined) && !this.maskData) {
      throw new SegvolError('ERR_ARGUMENT', 'batch: some windows have a mask and some do not; a data source gives masks always or never');
    }
  }

  /** Which input first holds a NaN or Inf, or undefined. */
  nonFiniteInput(): string | undefined {
    const names = Object.keys(this.inputs);
    const i = ops.firstNonFinite(names.map((n) => this.inputs[n]!));
    return i >= 0 ? names[i] : undefined;
  }

  /** Labels (N, d', h', w') for an output (N, K, d', h', w'): the centred output window of the input window. */
  labels(output: Tensor): Tensor {
    return this.window(output).labels;
  }

  /** The mask cut like labels(output), if the data has masks. */
  mask(output: Tensor): Tensor | undefined {
    return this.window(output).mask;
  }

  /** The labels of the output window as host values, (N, d', h', w'). */
  labelValues(outputSize: readonly number[]): Float32Array {
    return cropWindow(this.labelData, this.count, this.size, this.offsetOf(outputSize), outputSize);
  }

  /**
   * Targets computed from the labels for an output (N, C, d', h', w'): each window's
   * targets (affinities) on its whole input window, cut to the output window, stacked as
   * (N, C, d', h', w'); with the mask of entries that are defined (undefined when all are).
   */
  targets(output: Tensor, kind: Exclude<TargetKind, 'classes'>): { values: Tensor; mask: Tensor | undefined } {
    const spatial = output.shape.slice(2);
    const channels = targetChannels[kind];
    if (output.rank !== 5 || output.shape[0] !== this.count || output.shape[1] !== channels) {
      throw new SegvolError('ERR_SHAPE', `batch: targets '${kind}' have ${channels} channels; expected an output (${this.count}, ${channels}, d, h, w), ` +
        `received (${output.shape.join(', ')})`);
    }
    const key = `${kind}:${spatial.join('x')}`;
    let made = this.computed.get(key);
    if (!made) {
      const offset = this.offsetOf(spatial);
      const voxels = this.size[0] * this.size[1] * this.size[2];
      const values: Float32Array[] = [], masks: Float32Array[] = [];
      for (let b = 0; b < this.count; ++b) {
        const window = windowTargets(kind, this.labelData.subarray(b * voxels, (b + 1) * voxels), this.size, this.maskData?.subarray(b * voxels, (b + 1) * voxels));
        // (C, d, h, w) of one window is C volumes: cut each to the output window.
        values.push(cropWindow(window.values, channels, this.size, offset, spatial));
        masks.push(cropWindow(window.mask, channels, this.size, offset, spatial));
      }
      const shape = [this.count, channels, ...spatial];
      const mask = stack(masks);
      made = {
        values: Tensor.fromArray(stack(values), shape, { device: this.device }),
        mask: mask.every((m) => m === 1) ? undefined : Tensor.fromArray(mask, shape, { device: this.device }),
      };
      this.computed.set(key, made);
    }
    return made;
  }

  dispose(): void {
    for (const t of Object.values(this.inputs)) t.dispose();
    for (const { labels, mask } of this.cut.values()) {
      labels.dispose();
      mask?.dispose();
    }
    this.cut.clear();
    for (const { values, mask } of this.computed.values()) {
      values.dispose();
      mask?.dispose();
    }
    this.computed.clear();
  }

  private offsetOf(outputSize: readonly number[]): number[] {
    if (outputSize.length !== 3 || outputSize.some((s, a) => s > this.size[a]!)) {
      throw new SegvolError('ERR_SHAPE', `batch: an output of spatial size (${outputSize.join(', ')}) does not fit in the input window ` +
        `(${this.size.join(', ')}); labels can be cut only to outputs of the input's size or smaller (N, K, d, h, w)`);
    }
    return outputSize.map((s, a) => Math.floor((this.size[a]! - s) / 2));
  }

  private window(output: Tensor): { labels: Tensor; mask: Tensor | undefined } {
    const spatial = output.shape.slice(2);
    if (output.rank !== 5 || output.shape[0] !== this.count) {
      throw new SegvolError('ERR_SHAPE', `batch: expected an output (${this.count}, K, d, h, w), received (${output.shape.join(', ')})`);
    }
    const key = spatial.join('x');
    let cut = this.cut.get(key);
    if (!cut) {
      const offset = this.offsetOf(spatial);
      const shape = [this.count, ...spatial];
      cut = {
        labels: Tensor.fromArray(cropWindow(this.labelData, this.count, this.size, offset, spatial), shape, { device: this.device }),
        mask: this.maskData ? Tensor.fromArray(cropWindow(this.maskData, this.count, this.size, offset, spatial), shape, { device: this.device }) : undefined,
      };
      this.cut.set(key, cut);
    }
    return cut;
  }
}
