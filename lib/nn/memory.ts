// The memory of a training step of a layer list, predicted before it runs. The
// prediction follows what the tape and the native layers really hold (float32
// tensors; the allocator's own overhead and the runtime are not counted);
// test/memory.test.ts checks it against the measured peak of live tensor bytes.
//
// A step holds, besides the parameters and the optimizer state:
//   forward:  the batch, every layer's output (kept for the finite check until the
//             forward pass ends), each layer's saved state (a recurrent layer's
//             planes), and the layer in flight's own transient;
//   backward: what the nodes not yet differentiated keep (their inputs or outputs,
//             their planes), the gradient arriving and the one leaving, the
//             gradients of the parameters so far, and the layer's backward transient.
import type { Layer, LayerMemory, MemorySchedule } from './layer';

export interface StepMemory {
  /** The most bytes live at once during the step. */
  peakBytes: number;
  /** Where that is: "forward layers.6" or "backward layers.6". */
  peakAt: string;
  /** What backward needs, at the end of the forward pass (planes, kept activations). */
  keptBytes: number;
  /** Parameters, their gradients and the optimizer's state. */
  modelBytes: number;
  /** The largest transient of one layer, forward or backward. */
  transientBytes: number;
  schedule: MemorySchedule;
}

const GiB = 2 ** 30;

export function formatBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * The memory of one training step of layers applied in order to a batch of this input
 * shape (N, C, D, H, W), with the optimizer keeping `optimizerStates` tensors per
 * parameter (2 for RMSprop and Adam).
 */
export function estimateLayerListMemory(layers: readonly Layer[], inputShape: readonly number[], options: {
  schedule?: MemorySchedule; device?: 'cpu' | 'cuda'; optimizerStates?: number;
} = {}): StepMemory {
  const schedule = options.schedule ?? {};
  const device = options.device ?? 'cpu';
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  const shapes: number[][] = [[...inputShape]];
  layers.forEach((layer, i) => shapes.push(layer.outputShape(shapes[i]!, `layers.${i}`)));
  const mem: LayerMemory[] = layers.map((layer, i) =>
    layer.memory?.(shapes[i]!, schedule, device) ?? { keepsInput: true, keepsOutput: false, saved: 0, forward: 0, backward: 0 });
  const n = layers.length;
  const params = layers.map((l) => [...l.parameters.values()].reduce((a, t) => a + t.size, 0));
  const totalParams = params.reduce((a, b) => a + b, 0);
  const out = shapes[n]!;
  // Labels (and the loss's kept gradient) are of the output's batch and spatial size.
  const labels = size(out) / (out[1] ?? 1);
  const persistent = totalParams * (1 + (options.optimizerStates ?? 2));
  const base = persistent + size(shapes[0]!) + labels;

  let peak = 0, peakAt = '', transient = 0;
  const consider = (floats: number, where: string) => {
    if (floats > peak) {
      peak = floats;
      peakAt = where;
    }
  };
  // Forward: every output stays (the finite check looks at them all when the pass ends).
  let live = base;
  for (let i = 0; i < n; ++i) {
    consider(live + mem[i]!.forward + size(shapes[i + 1]!), `forward layers.${i}`);
    transient = Math.max(transient, mem[i]!.forward, mem[i]!.backward);
    live += size(shapes[i + 1]!) + mem[i]!.saved;
  }
  live += size(out);  // the loss's gradient
  consider(live, 'end of the forward pass');
  // After the check only what nodes keep remains: output j lives while node j keeps its
  // output or node j + 1 its input, until that node's gradient is done.
  const keptUntil = (j: number) => Math.max(mem[j]!.keepsOutput ? j : -1, j + 1 < n && mem[j + 1]!.keepsInput ? j + 1 : -1);
  const kept = (i: number) => {
    let floats = 0;
    for (let j = 0; j < n; ++j) if (keptUntil(j) >= 0 && keptUntil(j) <= i) floats += size(shapes[j + 1]!);
    for (let j = 0; j <= i; ++j) floats += mem[j]!.saved;
    return floats;
  };
  const keptBytes = 4 * (kept(n - 1) + size(out));
  let grads = 0;
  for (let i = n - 1; i >= 0; --i) {
    // The layer's own parameter gradients appear during its backward.
    grads += params[i]!;
    consider(base + size(out) + kept(i) + grads + size(shapes[i + 1]!) + size(shapes[i]!) + mem[i]!.backward, `backward layers.${i}`);
  }
  return {
    peakBytes: 4 * peak, peakAt, keptBytes, modelBytes: 4 * (persistent + totalParams), transientBytes: 4 * transient, schedule,
  };
}
