// A synthetic EM-like stack for the demo and tests: Voronoi cells in an
// anisotropic volume (thick z sections, as in serial-section EM), dark membranes
// between them, per-cell brightness, in-plane blur and noise. Labels: 1 membrane, 0 cell.
import { Random } from '../core/random';

export interface SyntheticEmOptions {
  depth?: number;
  height?: number;
  width?: number;
  /** Number of cells (Voronoi seeds). */
  cells?: number;
  /** Section thickness in pixel units (z distances count this much). */
  zScale?: number;
  /** Membrane half-thickness in pixels. */
  membrane?: number;
  /** Standard deviation of the Gaussian noise. */
  noise?: number;
  seed?: number;
}

export interface SyntheticEm {
  /** (D, H, W), normalised per slice to zero mean, unit variance. */
  image: Float32Array;
  /** (D, H, W): 1 membrane, 0 cell interior. */
  labels: Float32Array;
  /** (D, H, W): the cell (1..cells) of each interior voxel, 0 on membranes: neurons cut by sections, drifting through z. */
  segments: Int32Array;
  shape: [number, number, number];
}

export function syntheticEm(options: SyntheticEmOptions = {}): SyntheticEm {
  const D = options.depth ?? 24, H = options.height ?? 96, W = options.width ?? 96;
  const cells = options.cells ?? Math.max(8, Math.round((D * H * W) / 9000));
  const zScale = options.zScale ?? 4;
  const membrane = options.membrane ?? 1.2;
  const random = new Random(options.seed ?? 1);
  const seeds = Array.from({ length: cells }, () => [random.next() * D, random.next() * H, random.next() * W] as const);
  const brightness = Array.from({ length: cells }, () => 0.55 + 0.3 * random.next());
  const raw = new Float32Array(D * H * W);
  const labels = new Float32Array(D * H * W);
  const segments = new Int32Array(D * H * W);
  for (let z = 0; z < D; ++z)
    for (let y = 0; y < H; ++y)
      for (let x = 0; x < W; ++x) {
        let d1 = Infinity, d2 = Infinity, nearest = 0;
        for (let c = 0; c < cells; ++c) {
          const [sz, sy, sx] = seeds[c]!;
          const d = Math.hypot((z - sz) * zScale, y - sy, x - sx);
          if (d < d1) {
            d2 = d1;
            d1 = d;
            nearest = c;
          } else if (d < d2) {
            d2 = d;
          }
        }
        const i = (z * H + y) * W + x;
        // Distance to the bisector between the two nearest seeds is about (d2 - d1) / 2.
        const isMembrane = (d2 - d1) / 2 < membrane;
        labels[i] = isMembrane ? 1 : 0;
        segments[i] = isMembrane ? 0 : nearest + 1;
        raw[i] = isMembrane ? 0.15 : brightness[nearest]! + 0.05 * Math.sin(0.7 * x + 1.3 * y + nearest);
      }
  // In-plane 3x3 blur (the microscope's point spread), then noise, then per-slice z-scoring.
  const image = new Float32Array(D * H * W);
  const noise = options.noise ?? 0.08;
  for (let z = 0; z < D; ++z) {
    let sum = 0, sumSq = 0;
    for (let y = 0; y < H; ++y)
      for (let x = 0; x < W; ++x) {
        let acc = 0, n = 0;
        for (let dy = -1; dy <= 1; ++dy)
          for (let dx = -1; dx <= 1; ++dx) {
            const yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < H && xx >= 0 && xx < W) {
              acc += raw[(z * H + yy) * W + xx]!;
              ++n;
            }
          }
        // Box-Muller normal noise.
        const g = Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
        const v = acc / n + noise * g;
        image[(z * H + y) * W + x] = v;
        sum += v;
        sumSq += v * v;
      }
    const mean = sum / (H * W);
    const std = Math.sqrt(Math.max(sumSq / (H * W) - mean * mean, 1e-12));
    for (let i = z * H * W; i < (z + 1) * H * W; ++i) image[i] = (image[i]! - mean) / std;
  }
  return { image, labels, segments, shape: [D, H, W] };
}
