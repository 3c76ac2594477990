// What the trainer consumes: a data source that draws aligned training windows
// of one or more named inputs with their labels. The augmentation (flips,
// rotation) and class-aware drawing belong to the sampler; the trainer stacks
// windows into batches and cuts labels to a network's output window.
// VolumeSampler serves in-memory volumes (the CLI's data, the demo, tests).
import { describe, SegvolError } from '../core/errors';
import type { Random } from '../core/random';
import { listOf } from '../core/validate';

export type Size3 = readonly [number, number, number];

/**
 * How a window turns about z: 'none'; 'any', a uniform random angle (bilinear for the
 * image, nearest for labels and mask); 'rightAngles', the xy transpose with probability
 * 0.5 on top of the flips, so with y and x flips on each of the square's 8 symmetries is
 * equally likely (ZNN's augmentation: values are moved, never interpolated).
 */
export type Rotation = 'none' | 'any' | 'rightAngles';
export const rotations: readonly Rotation[] = ['none', 'any', 'rightAngles'];

/** One drawn window, host values. */
/** Voxel counts per class (masked voxels excluded). */
export function classCounts(labels: Float32Array, classes: number, mask?: Float32Array): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; ++i) {
    if (mask && mask[i] === 0) continue;
    const c = labels[i]!;
    if (c >= 0 && c < classes && Number.isInteger(c)) counts[c]! += 1;
  }
  return counts;
}

/**
 * Voxels per class, and per class the voxels of the 2D images (z-slices of the
 * (..., H, W) labels) in which it occurs: what median frequency balancing needs.
 * Masked voxels are left out of both.
 */
export function classStatistics(labels: Float32Array, plane: number, classes: number, mask?: Float32Array): { counts: number[]; imageTotals: number[] } {
  if (!Number.isInteger(plane) || plane < 1 || labels.length % plane !== 0) {
    throw new SegvolError('ERR_SHAPE', `classStatistics: ${labels.length} labels are not whole images of ${plane} voxels`);
  }
  const counts = new Array<number>(classes).fill(0);
  const imageTotals = new Array<number>(classes).fill(0);
  const inImage = new Array<number>(classes).fill(0);
  for (let s = 0; s < labels.length; s += plane) {
    inImage.fill(0);
    let used = 0;
    for (let i = s; i < s + plane; ++i) {
      if (mask && mask[i] === 0) continue;
      ++used;
      const c = labels[i]!;
      if (c >= 0 && c < classes && Number.isInteger(c)) inImage[c]! += 1;
    }
    inImage.forEach((n, c) => {
      if (n === 0) return;
      counts[c]! += n;
      imageTotals[c]! += used;
    });
  }
  return { counts, imageTotals };
}

export interface SampledWindow {
  /** Each input by name: (C, d, h, w) values in C order. */
  inputs: Record<string, Float32Array>;
  /** (d, h, w) class ids. */
  labels: Float32Array;
  /** (d, h, w), 0 = ignore. */
  mask?: Float32Array;
}

export interface DataSource {
  /** Input names and channel counts, e.g. { input: 1 } or { image: 1, boundary: 1 }. */
  readonly inputs: Readonly<Record<string, number>>;
  /** Draws one window of size (d, h, w) using random (so a seed fixes the sequence). */
  sample(random: Random, size: Size3): SampledWindow;
  /** Voxel counts per class over all the data (for global class weights), if known. */
  classCounts?(classes: number): number[];
  /** Counts and per-class image totals over all the data (for global median frequency balancing), if known. */
  classStatistics?(classes: number): { counts: number[]; imageTotals: number[] };
  /** Voxels (per channel) in one pass over the data, if known: an epoch is a pass. */
  readonly voxels?: number;
}

export interface VolumeSamplerOptions {
  /** One input, named 'input': (C, D, H, W) float voxels, C-order. */
  volume?: Float32Array;
  /** The shape (C, D, H, W) of volume. */
  shape?: readonly [number, number, number, number];
  /** Or several aligned inputs by name (image + boundary map, four modalities), each (C_i, D, H, W). */
  inputs?: Record<string, { data: Float32Array; channels: number }>;
  /** (D, H, W) of the inputs, with inputs. */
  dims?: Size3;
  /** (D, H, W) class ids. */
  labels: Float32Array;
  mask?: Float32Array;
  /** Flip each axis with probability 0.5 (the paper: z, y and x for EM; x only for MR). */
  flip?: { z?: boolean; y?: boolean; x?: boolean };
  /** How windows turn about z (default 'none'); see Rotation. */
  rotation?: Rotation;
  /** rotate: true is rotation 'any' (a uniform random angle: the PyraMiD-LSTM paper's EM setting). */
  rotate?: boolean;
  /** Only sub-volumes holding at least `minVoxels` voxels of class `label` (two-phase training), drawn by up to `tries` attempts. */
  classAware?: { label: number; minVoxels?: number; tries?: number };
}

export class VolumeSampler implements DataSource {
  readonly inputs: Readonly<Record<string, number>>;
  readonly voxels: number;
  private readonly volumes: Record<string, Float32Array>;
  private readonly dims: [number, number, number];
  private readonly rotation: Rotation;

  constructor(private readonly options: VolumeSamplerOptions) {
    if (options.rotation !== undefined && !rotations.includes(options.rotation)) {
      throw new SegvolError('ERR_ARGUMENT', `VolumeSampler: expected rotation ${listOf(rotations)}, received ${describe(options.rotation)}`);
    }
    if (options.rotate === true && options.rotation !== undefined && options.rotation !== 'any') {
      throw new SegvolError('ERR_ARGUMENT', `VolumeSampler: rotate: true is rotation 'any', but rotation is ${describe(options.rotation)}; give one of the two`);
    }
    this.rotation = options.rotation ?? (options.rotate === true ? 'any' : 'none');
    if ((options.volume === undefined) === (options.inputs === undefined)) {
      throw new SegvolError('ERR_ARGUMENT', 'VolumeSampler: expected either volume with shape (one input) or inputs with dims');
    }
    let named: Record<string, { data: Float32Array; channels: number }>;
    if (options.volume) {
      if (!options.shape || options.shape.length !== 4) {
        throw new SegvolError('ERR_ARGUMENT', 'VolumeSampler: volume needs its shape (C, D, H, W)');
      }
      named = { input: { data: options.volume, channels: options.shape[0] } };
      this.dims = [options.shape[1], options.shape[2], options.shape[3]];
    } else {
      if (!options.dims || options.dims.length !== 3) throw new SegvolError('ERR_ARGUMENT', 'VolumeSampler: inputs need dims (D, H, W)');
      named = options.inputs!;
      this.dims = [...options.dims] as [number, number, number];
    }
    const [d, h, w] = this.dims;
    this.voxels = d * h * w;
    if (Object.keys(named).length === 0) throw new SegvolError('ERR_ARGUMENT', 'VolumeSampler: expected at least one input');
    for (const [name, v] of Object.entries(named)) {
      if (!Number.isInteger(v.channels) || v.channels < 1 || v.data.length !== v.channels * d * h * w) {
        throw new SegvolError('ERR_SHAPE', `VolumeSampler: input '${name}' has ${v.data.length} values, ${v.channels} channels of ` +
          `(${d}, ${h}, ${w}) need ${v.channels * d * h * w}`);
      }
    }
    this.inputs = Object.fromEntries(Object.entries(named).map(([k, v]) => [k, v.channels]));
    this.volumes = Object.fromEntries(Object.entries(named).map(([k, v]) => [k, v.data]));
    if (options.labels.length !== d * h * w) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: labels have ${options.labels.length} values, expected ${d * h * w} (D, H, W) = (${d}, ${h}, ${w})`);
    }
    if (options.mask && options.mask.length !== d * h * w) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: mask has ${options.mask.length} values, expected ${d * h * w}`);
    }
  }

  /** One input's whole volume (C, D, H, W) as given (the only one when name is omitted). */
  volumeOf(name?: string): { data: Float32Array; channels: number; dims: [number, number, number] } {
    const key = name ?? Object.keys(this.volumes)[0]!;
    const data = this.volumes[key];
    if (!data) throw new SegvolError('ERR_ARGUMENT', `VolumeSampler: no input '${key}'; the inputs: ${Object.keys(this.volumes).join(', ')}`);
    return { data, channels: this.inputs[key]!, dims: [...this.dims] };
  }

  /**
   * The same sampler with one more aligned input (a boundary map for recursive training):
   * the same labels, mask and augmentation. A single input named 'input' takes the name
   * `rename` (the ZNN networks call theirs 'image').
   */
  withInput(name: string, data: Float32Array, channels = 1, rename = 'image'): VolumeSampler {
    const inputs: Record<string, { data: Float32Array; channels: number }> = {};
    for (const [k, v] of Object.entries(this.volumes)) inputs[k === 'input' && Object.keys(this.volumes).length === 1 ? rename : k] = { data: v, channels: this.inputs[k]! };
    if (name in inputs) throw new SegvolError('ERR_ARGUMENT', `VolumeSampler.withInput: the sampler already has an input '${name}'`);
    inputs[name] = { data, channels };
    const { volume: _volume, shape: _shape, inputs: _inputs, dims: _dims, ...rest } = this.options;
    return new VolumeSampler({ ...rest, inputs, dims: [...this.dims] });
  }

  sample(random: Random, size: Size3): SampledWindow {
    const [D, H, W] = this.dims;
    const [d, h, w] = size;
    if (d > D || h > H || w > W || d < 1 || h < 1 || w < 1) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: sub-volume (${size.join(', ')}) does not fit the volume (${D}, ${H}, ${W})`);
    }
    const aware = this.options.classAware;
    const tries = aware ? aware.tries ?? 50 : 1;
    let sample = this.draw(random, size);
    for (let attempt = 1; attempt < tries; ++attempt) {
      const hits = sample.labelsData.reduce((n, v) => n + (v === aware!.label ? 1 : 0), 0);
      if (hits >= (aware!.minVoxels ?? 1)) break;
      sample = this.draw(random, size);
    }
    return sample.mask ? { inputs: sample.inputs, labels: sample.labelsData, mask: sample.mask } : { inputs: sample.inputs, labels: sample.labelsData };
  }

  /** One random sub-volume: crop (rotated about its z axis if enabled), then flips; the same for every input. */
  private draw(random: Random, size: Size3): { inputs: Record<string, Float32Array>; labelsData: Float32Array; mask?: Float32Array } {
    if (this.rotation === 'rightAngles') return this.drawRightAngles(random, size);
    const [D, H, W] = this.dims;
    const [d, h, w] = size;
    // A rotated h x w window needs room for its diagonal; smaller volumes are not rotated.
    const radius = Math.sqrt(((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2);
    const rotate = this.rotation === 'any' && 2 * radius + 1 <= Math.min(H, W);
    const angle = rotate ? random.next() * 2 * Math.PI : 0;
    const z0 = random.int(D - d + 1);
    const margin = rotate ? radius : 0;
    const cy = rotate ? margin + random.next() * (H - 1 - 2 * margin) : random.int(H - h + 1) + (h - 1) / 2;
    const cx = rotate ? margin + random.next() * (W - 1 - 2 * margin) : random.int(W - w + 1) + (w - 1) / 2;
    const flip = this.options.flip ?? { z: true, y: true, x: true };
    const fz = flip.z ? random.next() < 0.5 : false;
    const fy = flip.y ? random.next() < 0.5 : false;
    const fx = flip.x ? random.next() < 0.5 : false;
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const sources = Object.entries(this.volumes).map(([name, volume]) => ({ name, volume, c: this.inputs[name]!, out: new Float32Array(this.inputs[name]! * d * h * w) }));
    const labelsData = new Float32Array(d * h * w);
    const mask = this.options.mask ? new Float32Array(d * h * w) : undefined;
    const labels = this.options.labels;
    for (let z = 0; z < d; ++z) {
      const sz = z0 + (fz ? d - 1 - z : z);
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) {
          const oy = (fy ? h - 1 - y : y) - (h - 1) / 2, ox = (fx ? w - 1 - x : x) - (w - 1) / 2;
          const py = cy + cos * oy - sin * ox, px = cx + sin * oy + cos * ox;
          const dst = (z * h + y) * w + x;
          // Labels and mask: nearest voxel (class ids must not be blended).
          const ny = Math.min(H - 1, Math.max(0, Math.round(py))), nx = Math.min(W - 1, Math.max(0, Math.round(px)));
          const nearest = (sz * H + ny) * W + nx;
          labelsData[dst] = labels[nearest]!;
          if (mask) mask[dst] = this.options.mask![nearest]!;
          if (!rotate) {
            for (const { volume, c, out } of sources) {
              for (let ch = 0; ch < c; ++ch) out[ch * d * h * w + dst] = volume[ch * D * H * W + nearest]!;
            }
            continue;
          }
          const y0 = Math.min(H - 2, Math.max(0, Math.floor(py))), x0 = Math.min(W - 2, Math.max(0, Math.floor(px)));
          const ly = Math.min(1, Math.max(0, py - y0)), lx = Math.min(1, Math.max(0, px - x0));
          for (const { volume, c, out } of sources) {
            for (let ch = 0; ch < c; ++ch) {
              const base = (ch * D + sz) * H * W;
              const a = volume[base + y0 * W + x0]!, b = volume[base + y0 * W + x0 + 1]!;
              const e = volume[base + (y0 + 1) * W + x0]!, f = volume[base + (y0 + 1) * W + x0 + 1]!;
              out[ch * d * h * w + dst] = (a * (1 - lx) + b * lx) * (1 - ly) + (e * (1 - lx) + f * lx) * ly;
            }
          }
        }
    }
    const inputs = Object.fromEntries(sources.map((s) => [s.name, s.out]));
    return mask ? { inputs, labelsData, mask } : { inputs, labelsData };
  }

  /**
   * One window under a symmetry of the square: transposed (y and x swapped) with probability
   * 0.5, then flipped per axis. Every value is copied from one voxel, so the window holds a
   * permutation of a crop's values. A transpose that would not fit (h x w windows of a volume
   * too narrow for w x h) is skipped.
   */
  private drawRightAngles(random: Random, size: Size3): { inputs: Record<string, Float32Array>; labelsData: Float32Array; mask?: Float32Array } {
    const [D, H, W] = this.dims;
    const [d, h, w] = size;
    const transpose = random.next() < 0.5 && w <= H && h <= W;
    // The crop read: h x w, or w x h when transposed.
    const [rh, rw] = transpose ? [w, h] : [h, w];
    const z0 = random.int(D - d + 1), y0 = random.int(H - rh + 1), x0 = random.int(W - rw + 1);
    const flip = this.options.flip ?? { z: true, y: true, x: true };
    const fz = flip.z ? random.next() < 0.5 : false;
    const fy = flip.y ? random.next() < 0.5 : false;
    const fx = flip.x ? random.next() < 0.5 : false;
    const n = d * h * w;
    const sources = Object.entries(this.volumes).map(([name, volume]) => ({ name, volume, c: this.inputs[name]!, out: new Float32Array(this.inputs[name]! * n) }));
    const labelsData = new Float32Array(n);
    const mask = this.options.mask ? new Float32Array(n) : undefined;
    for (let z = 0; z < d; ++z) {
      const sz = z0 + (fz ? d - 1 - z : z);
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) {
          const yy = fy ? h - 1 - y : y, xx = fx ? w - 1 - x : x;
          const src = (sz * H + y0 + (transpose ? xx : yy)) * W + x0 + (transpose ? yy : xx);
          const dst = (z * h + y) * w + x;
          labelsData[dst] = this.options.labels[src]!;
          if (mask) mask[dst] = this.options.mask![src]!;
          for (const { volume, c, out } of sources) for (let ch = 0; ch < c; ++ch) out[ch * n + dst] = volume[ch * D * H * W + src]!;
        }
    }
    const inputs = Object.fromEntries(sources.map((s) => [s.name, s.out]));
    return mask ? { inputs, labelsData, mask } : { inputs, labelsData };
  }

  classCounts(classes: number): number[] {
    return classCounts(this.options.labels, classes, this.options.mask);
  }

  classStatistics(classes: number): { counts: number[]; imageTotals: number[] } {
    return classStatistics(this.options.labels, this.dims[1] * this.dims[2], classes, this.options.mask);
  }
}

/**
 * Samples from several volumes (training subjects, EM stacks): each window from one of them,
 * picked with probability proportional to its weight. The weights default to the sources'
 * voxel counts (every voxel equally likely, whatever stack it is in).
 */
export class MultiSampler implements DataSource {
  readonly inputs: Readonly<Record<string, number>>;
  readonly voxels: number | undefined;
  /** The relative weights the sources are drawn with (as given, not normalised). */
  readonly sizes: readonly number[];
  private readonly weights: number[];

  constructor(readonly sources: readonly DataSource[], sizes?: readonly number[]) {
    if (!Array.isArray(sources) || sources.length === 0) {
      throw new SegvolError('ERR_ARGUMENT', `MultiSampler: expected a non-empty list of volumes (data sources), received ${describe(sources)}`);
    }
    this.inputs = sources[0]!.inputs;
    const describeInputs = (inputs: Readonly<Record<string, number>>) => Object.entries(inputs).map(([k, c]) => `${k}: ${c}`).join(', ');
    sources.forEach((s, i) => {
      if (describeInputs(s.inputs) !== describeInputs(this.inputs)) {
        throw new SegvolError('ERR_SHAPE', `MultiSampler: volume ${i} has inputs { ${describeInputs(s.inputs)} }, volume 0 { ${describeInputs(this.inputs)} }`);
      }
    });
    if (sizes === undefined) {
      const unknown = sources.findIndex((s) => s.voxels === undefined);
      if (unknown >= 0) throw new SegvolError('ERR_ARGUMENT', `MultiSampler: volume ${unknown} does not know its size; give the weights (sizes) of all ${sources.length}`);
      sizes = sources.map((s) => s.voxels!);
    }
    if (!Array.isArray(sizes) || sizes.length !== sources.length) {
      throw new SegvolError('ERR_ARGUMENT', `MultiSampler: expected ${sources.length} weights (one per volume), received ${Array.isArray(sizes) ? sizes.length : describe(sizes)}`);
    }
    const bad = sizes.findIndex((n) => !(typeof n === 'number' && Number.isFinite(n) && n > 0));
    if (bad >= 0) throw new SegvolError('ERR_ARGUMENT', `MultiSampler: expected weights > 0, received ${describe(sizes[bad])} for volume ${bad}`);
    this.sizes = [...sizes];
    this.voxels = sources.every((s) => s.voxels !== undefined) ? sources.reduce((n, s) => n + s.voxels!, 0) : undefined;
    const total = sizes.reduce((a, b) => a + b, 0);
    this.weights = sizes.map((n) => n / total);
  }

  /** The same drawing over other sources, one per source in the same order, with the same weights (a boundary map added to each). */
  withSources(sources: readonly DataSource[]): MultiSampler {
    if (sources.length !== this.sources.length) {
      throw new SegvolError('ERR_ARGUMENT', `MultiSampler.withSources: expected ${this.sources.length} volumes, received ${sources.length}`);
    }
    return new MultiSampler(sources, this.sizes);
  }

  sample(random: Random, size: Size3): SampledWindow {
    let u = random.next();
    let i = 0;
    while (i < this.sources.length - 1 && u >= this.weights[i]!) u -= this.weights[i++]!;
    return this.sources[i]!.sample(random, size);
  }

  classCounts(classes: number): number[] {
    const out = new Array<number>(classes).fill(0);
    for (const s of this.sources) {
      if (!s.classCounts) throw new SegvolError('ERR_ARGUMENT', 'MultiSampler: a source cannot count its classes (no classCounts)');
      s.classCounts(classes).forEach((n, c) => (out[c]! += n));
    }
    return out;
  }

  classStatistics(classes: number): { counts: number[]; imageTotals: number[] } {
    const counts = new Array<number>(classes).fill(0), imageTotals = new Array<number>(classes).fill(0);
    for (const s of this.sources) {
      if (!s.classStatistics) throw new SegvolError('ERR_ARGUMENT', 'MultiSampler: a source cannot count its classes per image (no classStatistics)');
      const r = s.classStatistics(classes);
      r.counts.forEach((n, c) => (counts[c]! += n));
      r.imageTotals.forEach((n, c) => (imageTotals[c]! += n));
    }
    return { counts, imageTotals };
  }
}
