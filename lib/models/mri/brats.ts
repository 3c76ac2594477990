// BRATS on disk: one folder per case holding the four MR modalities and, for training
// cases, the tumour labels, in either naming convention:
//   BRATS 2018-2021: <case>_flair.nii.gz, <case>_t1.nii.gz, <case>_t1ce.nii.gz, <case>_t2.nii.gz, <case>_seg.nii.gz
//     (BraTS 2023's -t2f, -t1n, -t1c, -t2w, -seg are recognised too);
//   BRATS 2013-2015: VSD.Brain.XX.O.MR_Flair.<id>/VSD.Brain.XX.O.MR_Flair.<id>.mha (MR_T1, MR_T1c,
//     MR_T2), the labels in VSD.Brain_3more.XX.O.OT.<id>/...mha; .mha, .nii or .nii.gz, in
//     sub-folders or side by side.
// Cases load as one (4, D, H, W) input with the modalities in the order flair, t1, t1ce, t2,
// each normalised on its own (z-scores over the brain's non-zero voxels by default).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { readVolume } from '../../io/volume_io';
import { preprocessVolume, type Normalization } from '../../data/preprocess';
import { MultiSampler, VolumeSampler } from '../../data/samplers';

export type BratsModality = 'flair' | 't1' | 't1ce' | 't2';
/** The order of the channels of a loaded case (and of the model's input). */
export const bratsModalities: readonly BratsModality[] = ['flair', 't1', 't1ce', 't2'];
/** BRATS 2015's label names; 2018-2021 use 1 for necrosis and non-enhancing core together and never 3. */
export const bratsClasses = ['background', 'necrosis', 'edema', 'non-enhancing tumour', 'enhancing tumour'];

export interface BratsCaseFiles {
  /** The case folder's name. */
  id: string;
  folder: string;
  modalities: Record<BratsModality, string>;
  /** The labels; absent for validation and test cases. */
  seg?: string;
}

export interface BratsCase {
  id: string;
  /** (4, D, H, W): flair, t1, t1ce, t2, normalised. */
  image: Float32Array;
  /** (D, H, W) labels 0-4, when the case has them. */
  labels?: Float32Array;
  dims: [number, number, number];
  spacing?: [number, number, number];
  /** What the image went through (recorded in model files as the input's pre-processing). */
  normalize: Normalization;
}

const volumeExtension = /\.(nii\.gz|nii|mha)$/i;

/** Which BRATS file a name is, by either convention. */
export function bratsRole(fileName: string): BratsModality | 'seg' | undefined {
  const base = fileName.toLowerCase().replace(volumeExtension, '');
  if (!volumeExtension.test(fileName)) return undefined;
  const ends = (...suffixes: string[]) => suffixes.some((s) => base.endsWith(s));
  if (ends('_flair', '-t2f') || base.includes('.mr_flair.')) return 'flair';
  if (ends('_t1ce', '-t1c') || base.includes('.mr_t1c.')) return 't1ce';
  if (ends('_t1', '-t1n') || base.includes('.mr_t1.')) return 't1';
  if (ends('_t2', '-t2w') || base.includes('.mr_t2.')) return 't2';
  if (ends('_seg', '-seg') || base.includes('.ot.')) return 'seg';
  return undefined;
}

/** The BRATS files directly in a folder or in its sub-folders (the 2015 layout's one folder per file). */
function filesOf(folder: string): Map<BratsModality | 'seg', string[]> {
  const found = new Map<BratsModality | 'seg', string[]>();
  const add = (file: string) => {
    const role = bratsRole(path.basename(file));
    if (role) found.set(role, [...(found.get(role) ?? []), file]);
  };
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isFile()) add(full);
    else if (entry.isDirectory() && bratsRole(`${entry.name}.mha`)) {
      // VSD.Brain.XX.O.MR_Flair.54512/ holds VSD.Brain.XX.O.MR_Flair.54512.mha
      for (const inner of fs.readdirSync(full, { withFileTypes: true })) if (inner.isFile()) add(path.join(full, inner.name));
    }
  }
  return found;
}

/**
 * The BRATS cases under root: root itself when it is a case folder, else every case folder
 * up to three levels down (BRATS2015_Training/HGG/brats_2013_pat0001_1), sorted by path.
 */
export function findBratsCases(root: string): BratsCaseFiles[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(root);
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `BRATS: cannot read ${root}: ${(error as Error).message}`);
  }
  if (!stat.isDirectory()) throw new SegvolError('ERR_ARGUMENT', `BRATS: expected a folder of case folders, received the file ${root}`);
  const cases: BratsCaseFiles[] = [];
  const problems: string[] = [];
  const visit = (folder: string, depth: number) => {
    const files = filesOf(folder);
    const present = bratsModalities.filter((m) => files.has(m));
    if (present.length > 0) {
      const twice = [...files].filter(([, list]) => list.length > 1);
      if (twice.length) {
        problems.push(`${folder}: more than one ${twice[0]![0]} file (${twice[0]![1].map((f) => path.basename(f)).join(', ')})`);
        return;
      }
      if (present.length < 4) {
        problems.push(`${folder}: no ${bratsModalities.filter((m) => !files.has(m)).join(', ')} file`);
        return;
      }
      const modalities = Object.fromEntries(bratsModalities.map((m) => [m, files.get(m)![0]!])) as Record<BratsModality, string>;
      cases.push({ id: path.basename(folder), folder, modalities, ...(files.has('seg') ? { seg: files.get('seg')![0]! } : {}) });
      return;
    }
    if (depth >= 3) return;
    for (const entry of fs.readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.isDirectory()) visit(path.join(folder, entry.name), depth + 1);
    }
  };
  visit(root, 0);
  if (problems.length) {
    throw new SegvolError('ERR_FORMAT', `BRATS: ${problems.length} incomplete case folder${problems.length > 1 ? 's' : ''}: ${problems.slice(0, 3).join('; ')}` +
      `${problems.length > 3 ? '; ...' : ''}. Each case needs flair, t1, t1ce and t2 volumes (seg for training), named as BRATS 2015 or 2018-2021 name them`);
  }
  if (cases.length === 0) {
    throw new SegvolError('ERR_ARGUMENT', `BRATS: no case folders under ${root}; expected folders holding <case>_flair.nii.gz, _t1, _t1ce, _t2 (and _seg), ` +
      'or the 2015 layout (VSD.Brain.XX.O.MR_Flair.<id>/...mha and its siblings)');
  }
  return cases.sort((a, b) => a.folder.localeCompare(b.folder));
}

/** Reads one case: the four modalities (checked to match), each normalised on its own, and the labels. */
export function loadBratsCase(files: BratsCaseFiles, options: { normalize?: Normalization; labels?: boolean } = {}): BratsCase {
  const normalize = options.normalize ?? 'nonzero';
  const volumes = bratsModalities.map((m) => ({ m, v: readVolume(files.modalities[m]) }));
  const first = volumes[0]!.v;
  if (first.shape.length !== 3) {
    throw new SegvolError('ERR_SHAPE', `BRATS case ${files.id}: ${files.modalities.flair} is (${first.shape.join(', ')}), expected one (D, H, W) volume`);
  }
  for (const { m, v } of volumes) {
    if (v.shape.join() !== first.shape.join()) {
      throw new SegvolError('ERR_SHAPE', `BRATS case ${files.id}: ${m} is (${v.shape.join(', ')}) but flair is (${first.shape.join(', ')}); ` +
        'the modalities must be co-registered on one grid (BRATS ships them so)');
    }
  }
  const dims = first.shape as [number, number, number];
  const n = dims[0] * dims[1] * dims[2];
  const image = new Float32Array(4 * n);
  volumes.forEach(({ v }, c) => image.set(preprocessVolume(v.data, dims, normalize), c * n));
  let labels: Float32Array | undefined;
  if (files.seg && options.labels !== false) {
    const seg = readVolume(files.seg);
    if (seg.shape.join() !== first.shape.join()) {
      throw new SegvolError('ERR_SHAPE', `BRATS case ${files.id}: the labels are (${seg.shape.join(', ')}), the images (${first.shape.join(', ')})`);
    }
    const bad = seg.data.findIndex((l) => !(l >= 0 && l <= 4 && Number.isInteger(l)));
    if (bad >= 0) {
      throw new SegvolError('ERR_FORMAT', `BRATS case ${files.id}: ${path.basename(files.seg)} holds ${seg.data[bad]} at voxel ${bad}; expected labels 0-4`);
    }
    labels = seg.data;
  }
  return { id: files.id, image, dims, normalize, ...(labels ? { labels } : {}), ...(first.spacing ? { spacing: first.spacing } : {}) };
}

export interface BratsSamplerOptions {
  /** Mirror left-right with probability 0.5 (default true: the hemispheres are alike; other flips are not anatomical). */
  flip?: boolean;
}

/**
 * Training windows over cases: a window (d, h, w) is d consecutive axial slices of all four
 * modalities (input 'input', 4 channels) and their labels, from a case drawn in proportion
 * to its size. Give size [sequence, H, W] (240x240 slices: the whole plane) to the trainer.
 */
export function bratsSampler(cases: readonly BratsCase[], options: BratsSamplerOptions = {}): MultiSampler {
  if (!Array.isArray(cases) || cases.length === 0) throw new SegvolError('ERR_ARGUMENT', `bratsSampler: expected loaded cases (loadBratsCase), received ${describe(cases)}`);
  const samplers = cases.map((c) => {
    if (!c.labels) throw new SegvolError('ERR_ARGUMENT', `bratsSampler: case ${c.id} has no labels (no seg file); training needs them`);
    return new VolumeSampler({ volume: c.image, shape: [4, c.dims[0], c.dims[1], c.dims[2]], labels: c.labels, flip: { x: options.flip ?? true } });
  });
  return new MultiSampler(samplers, cases.map((c) => c.dims[0] * c.dims[1] * c.dims[2]));
}
