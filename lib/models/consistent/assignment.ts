// The linear assignment problem (the Hungarian method's problem): pick one column per
// row (or one row per column, when there are more rows) so the summed cost is least.
// Solved by shortest augmenting paths with dual variables (Crouse, "On implementing 2D
// rectangular assignment algorithms", 2016), the method SciPy's linear_sum_assignment
// uses; written here from the paper's description. O(n^2 m) for n <= m.
import { SegvolError } from '../../core/errors';

export interface Assignment {
  /** Row indices, increasing, and the column assigned to each. */
  rows: number[];
  cols: number[];
  /** The summed cost of the pairs. */
  cost: number;
}

/**
 * The least-cost assignment of a (rows x cols) cost matrix given row-major: min(rows, cols)
 * pairs. Costs must be finite or +Infinity (a forbidden pair); an assignment that needs a
 * forbidden pair throws.
 */
export function linearSumAssignment(cost: ArrayLike<number>, rows: number, cols: number, options: { maximize?: boolean } = {}): Assignment {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || cost.length !== rows * cols) {
    throw new SegvolError('ERR_SHAPE', `linearSumAssignment: expected a ${rows} x ${cols} cost matrix (${rows * cols} values), received ${cost.length} values`);
  }
  for (let k = 0; k < cost.length; ++k) {
    const c = cost[k]!;
    if (Number.isNaN(c) || c === -Infinity || (options.maximize && c === Infinity)) {
      throw new SegvolError('ERR_ARGUMENT', `linearSumAssignment: cost (${Math.floor(k / cols)}, ${k % cols}) is ${c}; expected finite costs (or +Infinity to forbid a pair)`);
    }
  }
  if (rows === 0 || cols === 0) return { rows: [], cols: [], cost: 0 };
  // Work on n <= m: transpose a tall matrix.
  const transposed = rows > cols;
  const n = transposed ? cols : rows, m = transposed ? rows : cols;
  const sign = options.maximize ? -1 : 1;
  const c = new Float64Array(n * m);
  for (let i = 0; i < n; ++i) for (let j = 0; j < m; ++j) c[i * m + j] = sign * (transposed ? cost[j * cols + i]! : cost[i * cols + j]!);

  const u = new Float64Array(n), v = new Float64Array(m);
  const shortest = new Float64Array(m);
  const path = new Int32Array(m).fill(-1);
  const col4row = new Int32Array(n).fill(-1), row4col = new Int32Array(m).fill(-1);
  const seenRow = new Uint8Array(n), seenCol = new Uint8Array(m);
  const remaining = new Int32Array(m);

  for (let current = 0; current < n; ++current) {
    // Dijkstra over reduced costs from row `current` to the nearest free column.
    let minVal = 0;
    let i = current;
    let left = m;
    for (let k = 0; k < m; ++k) remaining[k] = m - 1 - k;
    seenRow.fill(0);
    seenCol.fill(0);
    shortest.fill(Infinity);
    let sink = -1;
    while (sink === -1) {
      let index = -1, lowest = Infinity;
      seenRow[i] = 1;
      for (let k = 0; k < left; ++k) {
        const j = remaining[k]!;
        const reduced = minVal + c[i * m + j]! - u[i]! - v[j]!;
        if (reduced < shortest[j]!) {
          path[j] = i;
          shortest[j] = reduced;
        }
        // Among equals, prefer a free column: the path ends sooner.
        if (shortest[j]! < lowest || (shortest[j] === lowest && row4col[j] === -1)) {
          lowest = shortest[j]!;
          index = k;
        }
      }
      minVal = lowest;
      if (minVal === Infinity) {
        throw new SegvolError('ERR_ARGUMENT', 'linearSumAssignment: no assignment avoids the forbidden (+Infinity) pairs');
      }
      const j = remaining[index]!;
      if (row4col[j] === -1) sink = j;
      else i = row4col[j]!;
      seenCol[j] = 1;
      remaining[index] = remaining[--left]!;
    }
    // Update the duals along the tree, then flip the path.
    u[current] += minVal;
    for (let r = 0; r < n; ++r) if (seenRow[r] && r !== current) u[r] += minVal - shortest[col4row[r]!]!;
    for (let j = 0; j < m; ++j) if (seenCol[j]) v[j] -= minVal - shortest[j]!;
    let j = sink;
    for (;;) {
      const r = path[j]!;
      row4col[j] = r;
      const previous = col4row[r]!;
      col4row[r] = j;
      j = previous;
      if (r === current) break;
    }
  }
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < n; ++i) pairs.push(transposed ? [col4row[i]!, i] : [i, col4row[i]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  return {
    rows: pairs.map((p) => p[0]), cols: pairs.map((p) => p[1]),
    cost: pairs.reduce((s, [r, k]) => s + cost[r * cols + k]!, 0),
  };
}
