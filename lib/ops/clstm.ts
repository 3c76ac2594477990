// The C-LSTM scan and the PyraMiD-LSTM layer as typed ops (conventions in
// docs/conventions.md). Forward passes return a SavedState that the backward
// pass consumes; dispose it when no backward pass will come. On a recording
// tape each is one node whose gradient is the fused native backward.
import { defineOp, type OpDefinition } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import {
  native,
  type ImplementationName,
  type NativeClstmGrads,
  type NativeClstmWeights,
  type NativePyramidBackward,
  type NativePyramidForward,
  type NativeScanBackward,
  type NativeScanForward,
} from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import { savedHandleOf, SavedState } from './saved';

export { SavedState } from './saved';

/** One C-LSTM's parameters: wx (4O, C, k, k), bx (4O), wh (4O, O, k, k), bh (4O); gate order i, f, g, o. */
export interface PyramidLstmOptions {
  /**
   * Keep the planes that backward needs (default true, and always while a tape
   * records this op). false is for inference: the layer then holds one scan
   * group's planes at a time, and backward refuses the result.
   */
  keepForBackward?: boolean;
  /**
   * Keep h and c only (2O floats per voxel and direction instead of 6O) and
   * recompute the gates in backward, bit for bit, at the cost of the forward's
   * convolutions once more. Default false.
   */
  recompute?: boolean;
  /** The most same-shaped directions one grouped scan may hold (1..6); default: the backend's choice. */
  scanGroups?: number;
}

export interface ClstmWeights {
  wx: Tensor;
  bx: Tensor;
  wh: Tensor;
  bh: Tensor;
  /**
   * Shi et al.'s peepholes (clstmScan only): (3, O, A, B), the Hadamard weights
   * w_ci, w_cf (on the previous cell) and w_co (on the new cell) over the plane.
   */
  peep?: Tensor;
}

export interface ClstmGradients {
  dwx: Tensor;
  dbx: Tensor;
  dwh: Tensor;
  dbh: Tensor;
  /** With peepholes. */
  dpeep?: Tensor;
}

/** 0: +D, 1: -D, 2: +H, 3: -H, 4: +W, 5: -W. */
export type Direction = 0 | 1 | 2 | 3 | 4 | 5;

export interface ClstmScanOptions {
  direction: Direction;
  /** Keep h and c only and recompute the gates in backward (less memory, more time). */
  recompute?: boolean;
  /** Initial state (N, O, A, B), A and B the plane's axes; both or neither. */
  h0?: Tensor;
  c0?: Tensor;
  /**
   * Without h0: start from a zero state, so bh enters the first plane too (the same as
   * h0 = c0 = 0, without computing their convolution). Default false: PyraMiD-LSTM's
   * convention, where the first plane has no recurrent term at all.
   */
  zeroState?: boolean;
}

export interface ClstmScanResult {
  /** (N, O, D, H, W): h of every plane. */
  h: Tensor;
  /** (N, O, A, B): the state after the scan's last plane. */
  hLast: Tensor;
  cLast: Tensor;
  saved: SavedState;
}

export interface ClstmScanGradients {
  dx: Tensor;
  grads: ClstmGradients;
  /** Present when the forward pass had an initial state. */
  dh0?: Tensor;
  dc0?: Tensor;
}

export interface PyramidLstmResult {
  /** (N, O, D, H, W): the sum of the six directions. */
  y: Tensor;
  saved: SavedState;
}

export interface PyramidLstmGradients {
  dx: Tensor;
  /** One per direction, in direction order. */
  grads: ClstmGradients[];
}

function weightHandles(w: ClstmWeights, op: string, label: string): NativeClstmWeights {
  if (w === null || typeof w !== 'object') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${label} as { wx, bx, wh, bh }, received ${describe(w)}`);
  }
  return {
    wx: handleOf(w.wx, op, `${label}.wx`),
    bx: handleOf(w.bx, op, `${label}.bx`),
    wh: handleOf(w.wh, op, `${label}.wh`),
    bh: handleOf(w.bh, op, `${label}.bh`),
    ...(w.peep !== undefined ? { peep: handleOf(w.peep, op, `${label}.peep`) } : {}),
  };
}

function sixWeights(weights: readonly ClstmWeights[], op: string): NativeClstmWeights[] {
  if (!Array.isArray(weights) || weights.length !== 6) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected six direction weights (+D, -D, +H, -H, +W, -W), ` +
      `received ${Array.isArray(weights) ? `${weights.length}` : describe(weights)}`);
  }
  return weights.map((w, d) => weightHandles(w, op, `weights[${d}]`));
}

function wrapGrads(g: NativeClstmGrads): ClstmGradients {
  return {
    dwx: Tensor.fromHandle(g.dwx), dbx: Tensor.fromHandle(g.dbx), dwh: Tensor.fromHandle(g.dwh), dbh: Tensor.fromHandle(g.dbh),
    ...(g.dpeep ? { dpeep: Tensor.fromHandle(g.dpeep) } : {}),
  };
}

function wrapPyramidForward(r: NativePyramidForward): PyramidLstmResult {
  return { y: Tensor.fromHandle(r.y), saved: SavedState.fromHandle(r.saved) };
}

function groupLimit(options: PyramidLstmOptions, op: string): number {
  const g = options.scanGroups;
  if (g === undefined) return 0;
  if (!Number.isInteger(g) || g < 1 || g > 6) throw new SegvolError('ERR_ARGUMENT', `${op}: expected scanGroups 1..6, received ${describe(g)}`);
  return g;
}

function weightList(weights: readonly ClstmWeights[]): Tensor[] {
  return weights.flatMap((w) => [w.wx, w.bx, w.wh, w.bh]);
}

function gradList(grads: ClstmGradients): Tensor[] {
  return [grads.dwx, grads.dbx, grads.dwh, grads.dbh];
}

function wrapScanBackward(r: NativeScanBackward): ClstmScanGradients {
  const out: ClstmScanGradients = { dx: Tensor.fromHandle(r.dx), grads: wrapGrads(r) };
  if (r.dh0) out.dh0 = Tensor.fromHandle(r.dh0);
  if (r.dc0) out.dc0 = Tensor.fromHandle(r.dc0);
  return out;
}

function wrapScanForward(r: NativeScanForward): ClstmScanResult {
  return { h: Tensor.fromHandle(r.h), hLast: Tensor.fromHandle(r.hLast), cLast: Tensor.fromHandle(r.cLast), saved: SavedState.fromHandle(r.saved) };
}

function wrapPyramidBackward(r: NativePyramidBackward): PyramidLstmGradients {
  return { dx: Tensor.fromHandle(r.dx), grads: r.grads.map(wrapGrads) };
}

export function clstmOps(impl: ImplementationName) {
  const optional = (t: Tensor | undefined, op: string, name: string) => (t === undefined ? null : handleOf(t, op, name));

  type ScanGrads = { dh?: Tensor; dhLast?: Tensor; dcLast?: Tensor };
  const scanBackwardArgs = (saved: SavedState, grads: ScanGrads, op: string) => [
    impl, savedHandleOf(saved, op), optional(grads.dh, op, 'dh'), optional(grads.dhLast, op, 'dhLast'), optional(grads.dcLast, op, 'dcLast'),
  ] as const;
  function scanBackward(saved: SavedState, grads: ScanGrads): ClstmScanGradients {
    return wrapScanBackward(native.clstmScanBackward(...scanBackwardArgs(saved, grads, 'clstmScanBackward'), false));
  }
  async function scanBackwardAsync(saved: SavedState, grads: ScanGrads): Promise<ClstmScanGradients> {
    return wrapScanBackward(await native.clstmScanBackward(...scanBackwardArgs(saved, grads, 'clstmScanBackwardAsync'), true));
  }
  const scanArgs = (x: Tensor, weights: ClstmWeights, options: ClstmScanOptions, op: string) => [
    impl, handleOf(x, op, 'input'), weightHandles(weights, op, 'weights'), options.direction,
    optional(options.h0, op, 'h0'), optional(options.c0, op, 'c0'), options.recompute ?? false,
  ] as const;
  // Records a scan on the active tape: one node whose gradient is the fused BPTT.
  function recordScan(op: OpDefinition, x: Tensor, weights: ClstmWeights, options: ClstmScanOptions, result: ClstmScanResult, async: boolean): void {
    const inputs = [x, ...weightList([weights]), options.h0, options.c0, weights.peep];
    if (!op.willRecord(inputs)) return;
    const saved = result.saved.share();
    op.record({
      inputs, outputs: [result.h, result.hLast, result.cLast], keep: [saved],
      backward: async ([dh, dhLast, dcLast]) => {
        const grads = { ...(dh ? { dh } : {}), ...(dhLast ? { dhLast } : {}), ...(dcLast ? { dcLast } : {}) };
        const g = async ? await scanBackwardAsync(saved, grads) : scanBackward(saved, grads);
        return [g.dx, ...gradList(g.grads), g.dh0, g.dc0, g.grads.dpeep];
      },
    });
  }
  function pyramidBackward(saved: SavedState, dy: Tensor): PyramidLstmGradients {
    const op = 'pyramidLstmBackward';
    return wrapPyramidBackward(native.pyramidLstmBackward(impl, savedHandleOf(saved, op), handleOf(dy, op, 'output gradient'), false));
  }
  async function pyramidBackwardAsync(saved: SavedState, dy: Tensor): Promise<PyramidLstmGradients> {
    const op = 'pyramidLstmBackwardAsync';
    return wrapPyramidBackward(await native.pyramidLstmBackward(impl, savedHandleOf(saved, op),
      handleOf(dy, op, 'output gradient'), true));
  }
  // Records a PyraMiD-LSTM forward on the active tape: one node, the fused backward.
  function recordPyramid(op: OpDefinition, x: Tensor, weights: readonly ClstmWeights[], result: PyramidLstmResult, async: boolean): void {
    const saved = result.saved.share();
    op.record({
      inputs: [x, ...weightList(weights)], outputs: [result.y], keep: [saved],
      backward: async ([dy]) => {
        const g = async ? await pyramidBackwardAsync(saved, dy!) : pyramidBackward(saved, dy!);
        return [g.dx, ...g.grads.flatMap(gradList)];
      },
    });
  }

  return {
    ops: {
      /** One C-LSTM over a volume x: (N, C, D, H, W) in one direction; the convolutions are 'same', stride 1. */
      clstmScan: defineOp('clstmScan', (op, x: Tensor, weights: ClstmWeights, options: ClstmScanOptions): ClstmScanResult => {
        const result = wrapScanForward(native.clstmScan(...scanArgs(x, weights, options, 'clstmScan'), false, options.zeroState ?? false));
        recordScan(op, x, weights, options, result, false);
        return result;
      }),
      /** clstmScan on the compute thread (the event loop stays free), and its gradient too. */
      clstmScanAsync: defineOp('clstmScan', async (op, x: Tensor, weights: ClstmWeights, options: ClstmScanOptions): Promise<ClstmScanResult> => {
        const result = wrapScanForward(await native.clstmScan(...scanArgs(x, weights, options, 'clstmScanAsync'), true, options.zeroState ?? false));
        recordScan(op, x, weights, options, result, true);
        return result;
      }),
      /** The PyraMiD-LSTM layer: six C-LSTMs, one per direction, summed. Runs on the calling thread. */
      pyramidLstm: defineOp('pyramidLstm', (op, x: Tensor, weights: readonly ClstmWeights[], options: PyramidLstmOptions = {}): PyramidLstmResult => {
        const handles = sixWeights(weights, op.name);
        const recording = op.willRecord([x, ...weightList(weights)]);
        const result = wrapPyramidForward(native.pyramidLstm(impl, handleOf(x, op.name, 'input'), handles, false,
          recording || (options.keepForBackward ?? true), options.recompute ?? false, groupLimit(options, op.name)));
        if (recording) recordPyramid(op, x, weights, result, false);
        return result;
      }),
      /** pyramidLstm on the thread pool: the event loop stays free while it runs (and while its gradient runs). */
      pyramidLstmAsync: defineOp('pyramidLstm', async (op, x: Tensor, weights: readonly ClstmWeights[], options: PyramidLstmOptions = {}): Promise<PyramidLstmResult> => {
        const name = 'pyramidLstmAsync';
        const handles = sixWeights(weights, name);
        const recording = op.willRecord([x, ...weightList(weights)]);
        const result = wrapPyramidForward(await native.pyramidLstm(impl, handleOf(x, name, 'input'), handles, true,
          recording || (options.keepForBackward ?? true), options.recompute ?? false, groupLimit(options, name)));
        if (recording) recordPyramid(op, x, weights, result, true);
        return result;
      }),
    },
    backward: {
      /** BPTT through a scan. dh: gradient of h; dhLast, dcLast: gradients of the final state. */
      clstmScanBackward: scanBackward,
      clstmScanBackwardAsync: scanBackwardAsync,
      pyramidLstmBackward: pyramidBackward,
      pyramidLstmBackwardAsync: pyramidBackwardAsync,
    },
  };
}
