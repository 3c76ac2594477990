// A synthetic multi-modal brain MR phantom with a glioma, for tests and the BRATS demo
// (BRATS itself cannot be shipped). A skull-stripped ellipsoidal brain (zero outside),
// white and grey matter, CSF ventricles, and a tumour with the BRATS labels: a necrotic
// core (1), edema around it (2), non-enhancing tumour (3) and an enhancing rim (4).
// Each tissue has its own contrast in each of flair, t1, t1ce and t2, roughly as in
// real scans, so no single modality separates every class: edema is bright in FLAIR and
// T2, the rim only in T1ce, necrosis dark in T1 and bright in T2.
import { Random } from '../../core/random';
import { SegvolError } from '../../core/errors';

export interface PhantomOptions {
  depth?: number;
  height?: number;
  width?: number;
  /** Tumour radius in voxels (edema reaches about 1.8 times it; default: a fifth of the brain's in-plane radius). */
  tumourRadius?: number;
  /** Whether there is a tumour (default true). */
  tumour?: boolean;
  /** Noise standard deviation relative to the white-matter signal (default 0.06). */
  noise?: number;
  seed?: number;
}

export interface Phantom {
  /** (4, D, H, W): flair, t1, t1ce, t2, raw intensities (0 outside the brain). */
  image: Float32Array;
  /** (D, H, W) BRATS labels 0-4. */
  labels: Float32Array;
  dims: [number, number, number];
  modalities: ['flair', 't1', 't1ce', 't2'];
}

// Tissue signal per modality (flair, t1, t1ce, t2), white matter ~ 1 in T1.
const tissues = {
  white: [0.55, 1.0, 1.0, 0.45],
  grey: [0.7, 0.7, 0.72, 0.65],
  csf: [0.12, 0.25, 0.25, 1.3],
  necrosis: [0.6, 0.25, 0.3, 1.25],      // label 1
  edema: [1.35, 0.6, 0.62, 1.05],        // label 2
  nonEnhancing: [1.0, 0.5, 0.55, 0.85],  // label 3
  enhancing: [0.95, 0.62, 1.6, 0.8],     // label 4
} as const;

/** A smooth random field: a sum of a few random plane waves (cheap, deterministic). */
function smoothField(random: Random, waves: number, scale: number): (z: number, y: number, x: number) => number {
  const params = Array.from({ length: waves }, () => ({
    kz: (random.next() - 0.5) * scale, ky: (random.next() - 0.5) * scale, kx: (random.next() - 0.5) * scale, phase: random.next() * 2 * Math.PI,
  }));
  return (z, y, x) => params.reduce((s, p) => s + Math.sin(p.kz * z + p.ky * y + p.kx * x + p.phase), 0) / Math.sqrt(waves);
}

export function syntheticBrainMri(options: PhantomOptions = {}): Phantom {
  const D = options.depth ?? 24, H = options.height ?? 64, W = options.width ?? 64;
  for (const [name, v] of [['depth', D], ['height', H], ['width', W]] as const) {
    if (!Number.isInteger(v) || v < 8) throw new SegvolError('ERR_ARGUMENT', `syntheticBrainMri: expected ${name} as an integer >= 8, received ${v}`);
  }
  const random = new Random(options.seed ?? 1);
  const noise = options.noise ?? 0.06;
  // The brain: an ellipsoid filling most of the volume, its surface a little irregular.
  const [cz, cy, cx] = [(D - 1) / 2, (H - 1) / 2, (W - 1) / 2];
  const [rz, ry, rx] = [0.46 * D, 0.44 * H, 0.38 * W];
  const surface = smoothField(random, 6, 0.4);
  const greyField = smoothField(random, 8, 0.9);
  const biasField = [0, 1, 2, 3].map(() => smoothField(random, 3, 0.08));
  // Ventricles: two small ellipsoids beside the midline.
  const ventricles = [-1, 1].map((side) => ({ z: cz, y: cy - 0.05 * H, x: cx + side * 0.08 * W, r: [0.25 * D, 0.12 * H, 0.04 * W] }));
  // The tumour: off-centre in one hemisphere, a lumpy sphere.
  const hasTumour = options.tumour ?? true;
  const radius = options.tumourRadius ?? Math.max(2.5, 0.2 * Math.min(ry, rx));
  const side = random.next() < 0.5 ? -1 : 1;
  const tumour = {
    z: cz + (random.next() - 0.5) * 0.3 * D, y: cy + (random.next() - 0.5) * 0.4 * ry, x: cx + side * (0.35 + 0.2 * random.next()) * rx,
  };
  const lump = smoothField(random, 6, 0.6);
  const nonEnhancingSide = random.next() * 2 * Math.PI;
  const image = new Float32Array(4 * D * H * W);
  const labels = new Float32Array(D * H * W);
  const n = D * H * W;
  for (let z = 0; z < D; ++z)
    for (let y = 0; y < H; ++y)
      for (let x = 0; x < W; ++x) {
        const i = (z * H + y) * W + x;
        const e = Math.hypot((z - cz) / rz, (y - cy) / ry, (x - cx) / rx);
        if (e > 1 + 0.04 * surface(z, y, x)) continue;  // background stays 0 in every modality
        let tissue: readonly number[] = greyField(z, y, x) + 1.6 * (e - 0.6) > 0 ? tissues.grey : tissues.white;
        for (const v of ventricles) {
          if (Math.hypot((z - v.z) / v.r[0]!, (y - v.y) / v.r[1]!, (x - v.x) / v.r[2]!) < 1) tissue = tissues.csf;
        }
        let label = 0;
        if (hasTumour) {
          // Distance from the tumour centre in radii, made lumpy; z voxels are as thick as in-plane ones.
          const r = Math.hypot(z - tumour.z, y - tumour.y, x - tumour.x) / radius * (1 + 0.15 * lump(z, y, x));
          if (r < 0.6) label = 1;
          else if (r < 1) {
            // The rim enhances except on one side, where the tumour does not take up contrast.
            const angle = Math.atan2(y - tumour.y, x - tumour.x);
            label = Math.cos(angle - nonEnhancingSide) > 0.55 ? 3 : 4;
          } else if (r < 1.8 + 0.25 * lump(x, z, y)) label = 2;
        }
        labels[i] = label;
        if (label) tissue = [tissues.necrosis, tissues.edema, tissues.nonEnhancing, tissues.enhancing][label - 1]!;
        for (let m = 0; m < 4; ++m) {
          const g = Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
          const bias = 1 + 0.08 * biasField[m]!(z, y, x);
          // Scanner-like units (a few hundred), never exactly 0 inside the brain.
          image[m * n + i] = Math.max(1, 400 * (tissue[m]! * bias + noise * g));
        }
      }
  return { image, labels, dims: [D, H, W], modalities: ['flair', 't1', 't1ce', 't2'] };
}
