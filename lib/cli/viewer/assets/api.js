// @ts-check
// The viewer's requests: JSON (an error reply { code, message } becomes a thrown Error) and
// slice regions (binary, float32 or float64 by the X-Segvol-Slice header).

/** @typedef {import('./main.js').LayerInfo} LayerInfo */
/** @typedef {import('./render.js').Slice} Slice */

/** (row axis, column axis) of the plane normal to each axis. */
export const planeAxes = [[1, 2], [0, 2], [0, 1]];

/** @param {string} url */
export async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.code}: ${body.message}`);
  return body;
}

/**
 * The rows and columns of a layer's level that cover a level-0 region [r0, r1) x [c0, c1) of the
 * plane normal to `axis`, clamped to the level (its last row may cover fewer level-0 voxels).
 * @param {LayerInfo} layer @param {number} axis @param {number} level @param {number[]} region
 */
export function levelRegion(layer, axis, level, region) {
  const [rowAxis, colAxis] = /** @type {[number, number]} */ (planeAxes[axis]);
  const f = /** @type {{ factor: number[], shape: number[] }} */ (layer.levels[level]);
  const fr = f.factor[rowAxis] ?? 1, fc = f.factor[colAxis] ?? 1;
  const rows = f.shape[rowAxis] ?? 1, cols = f.shape[colAxis] ?? 1;
  const r0 = Math.min(rows - 1, Math.floor((region[0] ?? 0) / fr)), c0 = Math.min(cols - 1, Math.floor((region[2] ?? 0) / fc));
  const r1 = Math.min(rows, Math.max(r0 + 1, Math.ceil((region[1] ?? 1) / fr)));
  const c1 = Math.min(cols, Math.max(c0 + 1, Math.ceil((region[3] ?? 1) / fc)));
  return { r0, r1, c0, c1, fr, fc };
}

/**
 * A slice region of a layer at a level, every step-th row and column.
 * @param {LayerInfo} layer @param {number} channel @param {number} axis @param {number} index the plane (level-0 voxels) @param {number} level
 * @param {number[]} region level-0 rows [0, 1) and columns [2, 3) @param {number} step @param {AbortSignal} signal
 * @returns {Promise<Slice>}
 */
export async function fetchSlice(layer, channel, axis, index, level, region, step, signal) {
  const { r0, r1, c0, c1, fr, fc } = levelRegion(layer, axis, level, region);
  const q = new URLSearchParams({ layer: layer.id, channel: String(channel), axis: String(axis), index: String(index), level: String(level),
    r0: String(r0), r1: String(r1), c0: String(c0), c1: String(c1), step: String(step) });
  const r = await fetch(`/api/slice?${q}`, { signal });
  if (!r.ok) throw new Error(`${(await r.json()).message}`);
  const header = JSON.parse(r.headers.get('X-Segvol-Slice') ?? '{}');
  const bytes = await r.arrayBuffer();
  return {
    data: header.dtype === 'float64' ? new Float64Array(bytes) : new Float32Array(bytes), rows: header.rows, cols: header.cols, level,
    origin: [r0 * fr, c0 * fc], pitch: [fr * step, fc * step],
  };
}

/**
 * The status line: chunks read so far (distinct ones in brackets), or that the volumes are in memory.
 * @param {boolean} chunked whether any layer is a chunked store
 */
export async function chunkStatus(chunked) {
  if (!chunked) return 'volumes in memory';
  /** @type {{ layers: Record<string, { chunkReads: number, distinctChunks: number }> }} */
  const { layers } = await getJson('/api/stats');
  let reads = 0, distinct = 0;
  for (const s of Object.values(layers)) { reads += s.chunkReads; distinct += s.distinctChunks; }
  return `chunks read: ${reads} (${distinct} distinct)`;
}
