// The cheapest memory schedule of a training step that fits a budget, from the
// prediction of lib/nn/memory.ts.
import { availableMemory, memoryStats } from '../core/backends';
import { describe, SegvolError } from '../core/errors';
import type { Device } from '../core/tensor';
import type { MemorySchedule } from '../nn/layer';
import { estimateLayerListMemory, formatBytes, type StepMemory } from '../nn/memory';
import type { ModelBase } from '../nn/model';
import { Sequential } from '../nn/sequential';

export { formatBytes, type StepMemory };

/** Where a step's memory budget came from. */
export type BudgetSource = 'option' | 'environment' | 'available';

export interface MemoryBudget {
  bytes: number;
  source: BudgetSource;
}

/**
 * The budget when none is given: what a step may take of the memory the device has now,
 * the tensors segvol already holds included (the plan counts them), less a margin for the
 * runtime and the allocators' caches (10%, and 1 GiB on the cpu, what its block cache may keep
 * above the most memory the step's blocks take at once).
 */
export function availableBudget(device: Device): MemoryBudget {
  const { free } = availableMemory(device);
  const held = memoryStats()[device].bytes;
  const bytes = device === 'cuda' ? 0.95 * (free + held) : 0.9 * (free + held) - 2 ** 30;
  return { bytes: Math.max(bytes, 0), source: 'available' };
}

/** A budget given as bytes or as text: "12G", "12 GiB", "800M", "512MiB". */
export function parseBudget(value: number | string, where: string): number {
  if (typeof value === 'number' && value > 0 && Number.isFinite(value)) return value;
  const m = typeof value === 'string' ? /^\s*([\d.]+)\s*([kmgt]?)(i?b)?\s*$/i.exec(value) : null;
  if (!m || !(Number(m[1]) > 0)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected a memory budget in bytes or as text like "12G" or "800MiB", received ${describe(value)}`);
  }
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * unit;
}

/**
 * The memory of one training step of a model on a batch of this input shape
 * (N, C, D, H, W); undefined for models it cannot follow yet (graphs and
 * forward-function models: layer lists only).
 */
export function estimateStepMemory(model: ModelBase, inputShape: readonly number[], options: {
  schedule?: MemorySchedule; device?: Device; optimizerStates?: number;
} = {}): StepMemory | undefined {
  if (!(model instanceof Sequential)) return undefined;
  return estimateLayerListMemory(model.layers, inputShape, { ...options, device: options.device ?? model.device });
}

/** Schedules from the fastest to the leanest: fewer directions at a time, then recomputed gates. */
function candidateSchedules(device: Device): MemorySchedule[] {
  const limits = device === 'cuda' ? [6, 4, 2, 1] : [undefined, 1];
  return [...limits.map((g) => (g ? { scanGroups: g } : {})), ...limits.map((g) => (g ? { recompute: true, scanGroups: g } : { recompute: true }))];
}

/**
 * The fastest schedule whose predicted peak fits the budget; ERR_MEMORY naming the
 * window that would fit when none does. Undefined for models the estimate cannot follow.
 */
export function planMemory(model: ModelBase, inputShape: readonly number[], budgetBytes: number, device: Device = model.device,
  budgetName = `the memory budget of ${formatBytes(budgetBytes)}`): StepMemory | undefined {
  let leanest: StepMemory | undefined;
  for (const schedule of candidateSchedules(device)) {
    const m = estimateStepMemory(model, inputShape, { schedule, device });
    if (!m) return undefined;
    if (m.peakBytes <= budgetBytes) return m;
    leanest = m;
  }
  // Nothing fits: shrink the plane (H, W) until the leanest schedule does.
  const [nb, c, d, h, w] = inputShape as [number, number, number, number, number];
  const lean = leanest!.schedule;
  let fit: { shape: number[]; peak: number } | undefined;
  for (let f = 0.95; f > 0.05 && !fit; f -= 0.05) {
    const shape = [nb, c, d, Math.max(1, Math.floor(h * f)), Math.max(1, Math.floor(w * f))];
    try {
      const m = estimateStepMemory(model, shape, { schedule: lean, device })!;
      if (m.peakBytes <= budgetBytes) fit = { shape, peak: m.peakBytes };
    } catch {
      break;  // too small for the network
    }
  }
  const window = `${d}x${h}x${w}${nb > 1 ? ` (batch ${nb})` : ''}`;
  throw new SegvolError('ERR_MEMORY', `a training step on ${window} needs about ${formatBytes(leanest!.peakBytes)} even with ` +
    `recomputed gates and one direction at a time, over ${budgetName}; ` +
    (fit ? `a ${fit.shape.slice(2).join('x')} window fits (about ${formatBytes(fit.peak)}): use it, or raise the budget`
      : 'no smaller window of that depth fits either: raise the budget'));
}
