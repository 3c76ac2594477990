// @ts-check
// Pure drawing helpers of the viewer: windowing, overlay colours and compositing of a
// slice region into RGBA pixels, and the choice of pyramid level. No DOM access here.

/** @typedef {{ level: number, width: number }} Window */
/**
 * Samples of a plane: sample (i, j) is level-0 voxel (origin[0] + i * pitch[0], origin[1] + j * pitch[1]).
 * @typedef {{ data: Float32Array | Float64Array, rows: number, cols: number, level: number, origin: number[], pitch: number[] }} Slice
 */

/**
 * Grey value of v under a window: the level +- width/2 range mapped to 0..255.
 * @param {number} v @param {Window} w
 */
export function grey(v, w) {
  const lo = w.level - w.width / 2;
  const g = Math.round(((v - lo) * 255) / Math.max(w.width, 1e-12));
  return g < 0 ? 0 : g > 255 ? 255 : g;
}

/**
 * A default window from the 1st and 99th percentiles of the first slice served (no pass
 * over the whole volume, which may not fit in memory).
 * @param {Float32Array | Float64Array} data @returns {Window}
 */
export function percentileWindow(data) {
  const values = Float64Array.from(data).filter((v) => Number.isFinite(v)).sort();
  if (values.length === 0) return { level: 0.5, width: 1 };
  const lo = values[Math.floor(0.01 * (values.length - 1))] ?? 0;
  const hi = values[Math.ceil(0.99 * (values.length - 1))] ?? 1;
  return hi > lo ? { level: (lo + hi) / 2, width: hi - lo } : { level: lo, width: 1 };
}

/**
 * Class k's colour: class 0 is background (not drawn), then the palette repeats after its
 * first entry, as segvol's PNG panels colour them.
 * @param {number[][]} palette @param {number} k
 */
export function classColour(palette, k) {
  return palette[1 + ((k - 1) % (palette.length - 1))] ?? [255, 255, 255];
}

/**
 * The coarsest pyramid level whose voxels are still no larger than a screen pixel along
 * both axes of the plane (level 0 when zoomed in).
 * @param {{ factor: number[] }[]} levels @param {number} rowAxis @param {number} colAxis
 * @param {number} rowScale screen pixels per level-0 voxel along rows @param {number} colScale
 */
export function chooseLevel(levels, rowAxis, colAxis, rowScale, colScale) {
  let chosen = 0;
  levels.forEach((l, k) => {
    const fr = l.factor[rowAxis] ?? 1, fc = l.factor[colAxis] ?? 1;
    if (fr * rowScale <= 1 + 1e-9 && fc * colScale <= 1 + 1e-9) chosen = k;
  });
  return chosen;
}

/**
 * @typedef {{ kind: 'labels' | 'prob', slice: Slice, opacity: number, outline: boolean, palette: number[][] }} Overlay
 */

/**
 * The image slice in grey with an overlay blended over it, as RGBA. The overlay may come
 * from another pyramid level: each image pixel takes the overlay voxel it lies in.
 * @param {Slice} image @param {Window} window @param {Overlay | null} overlay
 * @returns {ImageData}
 */
export function compose(image, window, overlay) {
  const { rows, cols, data } = image;
  const out = new ImageData(cols, rows);
  const px = out.data;
  for (let i = 0; i < rows * cols; ++i) {
    const g = grey(data[i] ?? 0, window);
    px[4 * i] = g;
    px[4 * i + 1] = g;
    px[4 * i + 2] = g;
    px[4 * i + 3] = 255;
  }
  if (!overlay) return out;
  const o = overlay.slice;
  // Image sample (i, j) -> level-0 voxel -> overlay sample.
  const [ir = 0, ic = 0] = image.origin, [ipr = 1, ipc = 1] = image.pitch, [or = 0, oc = 0] = o.origin, [opr = 1, opc = 1] = o.pitch;
  const rowMap = Int32Array.from({ length: rows }, (_, i) => Math.floor((ir + i * ipr - or) / opr));
  const colMap = Int32Array.from({ length: cols }, (_, j) => Math.floor((ic + j * ipc - oc) / opc));
  const at = (/** @type {number} */ r, /** @type {number} */ c) => (r < 0 || c < 0 || r >= o.rows || c >= o.cols ? NaN : o.data[r * o.cols + c] ?? NaN);
  const a = overlay.opacity;
  for (let i = 0; i < rows; ++i) {
    for (let j = 0; j < cols; ++j) {
      const r = rowMap[i] ?? 0, c = colMap[j] ?? 0;
      const v = at(r, c);
      let colour, alpha;
      if (overlay.kind === 'prob') {
        if (!(v > 0)) continue;
        colour = [255, 60, 40];
        alpha = a * Math.min(1, v);
      } else {
        if (!(v > 0)) continue;
        if (overlay.outline) {
          // An outline pixel has a 4-neighbour of another id (neighbours outside the region do not count).
          const n = [at(r - 1, c), at(r + 1, c), at(r, c - 1), at(r, c + 1)];
          if (!n.some((u) => !Number.isNaN(u) && u !== v)) continue;
        }
        colour = classColour(overlay.palette, Math.round(v));
        alpha = a;
      }
      const p = 4 * (i * cols + j);
      for (let ch = 0; ch < 3; ++ch) px[p + ch] = Math.round((px[p + ch] ?? 0) * (1 - alpha) + (colour[ch] ?? 0) * alpha);
    }
  }
  return out;
}

/**
 * The readout of a voxel: its position, then each layer's value(s), ids with their class names.
 * @param {{ id: string, role: string, name: string }[]} layers @param {string[]} classes
 * @param {number[]} at (z, y, x) @param {Record<string, number[]>} values by layer id
 */
export function readoutText(layers, classes, at, values) {
  const name = (/** @type {number} */ k) => (classes[k] ? ` ${classes[k]}` : '');
  const parts = [`z ${at[0]} y ${at[1]} x ${at[2]}`];
  for (const layer of layers) {
    const v = values[layer.id] ?? [];
    if (layer.role === 'image') parts.push(`${layer.name} ${v.map((u) => Number(u.toPrecision(5))).join(' ')}`);
    else if (layer.role === 'prob') parts.push(`p ${v.map((u) => u.toFixed(3)).join(' ')}`);
    else parts.push(`${layer.role} ${v[0]}${name(v[0] ?? 0)}`);
  }
  return parts.join(' | ');
}
