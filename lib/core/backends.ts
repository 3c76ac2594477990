import * as fs from 'node:fs';
import * as os from 'node:os';
import { native, type DeviceName } from './native';
import { describe, SegvolError } from './errors';

export interface BackendInfo {
  /** 'cpu' or 'cuda'. */
  name: 'cpu' | 'cuda';
  available: boolean;
  /** Why it is unavailable ('' when available), e.g. "not compiled: cuDNN not found at build time". */
  reason: string;
  /** Library versions or device name. */
  detail: string;
}

/** The compute backends of this build and whether each can run here. */
export function backends(): BackendInfo[] {
  return native.backends().map((b) => ({
    name: b.name === 'cuda' ? 'cuda' : 'cpu',
    available: b.available,
    reason: b.reason,
    detail: b.detail,
  }));
}

/** What lives on one device. */
export interface DeviceMemory {
  /** Tensors (views included) neither disposed nor collected. */
  tensors: number;
  /** Distinct allocations behind them (views share one), and their bytes. */
  storages: number;
  bytes: number;
  /** The most tensor bytes live at once since resetPeakMemory(device) (or the start). */
  peakBytes: number;
  /**
   * Freed blocks segvol keeps for reuse, in bytes (in no tensor, so not in `bytes`). On the
   * cpu they stay mapped up to 1 GiB above the most the blocks in use have been, so a
   * training step reuses the last step's memory instead of mapping it again;
   * releaseCachedMemory(device) gives them back.
   */
  cachedBytes: number;
}

/**
 * Live tensors and bytes per device: watch it across training steps to find a
 * leak (tensors not disposed). Tensor bytes exclude the blocks cached for reuse
 * (`cachedBytes`).
 */
export function memoryStats(): Record<'cpu' | 'cuda', DeviceMemory> {
  return native.memoryStats();
}

/**
 * The memory a device still has for segvol, in bytes, and its total: on cuda the driver's free
 * memory plus the blocks segvol caches for reuse; on the cpu the smaller of the cgroup limit
 * (containers, Slurm) and physical memory, less what this process and the rest of the system
 * use now (the kernel's MemAvailable, which counts reclaimable page cache as free).
 */
export function availableMemory(device: DeviceName): { free: number; total: number } {
  if (device === 'cuda') return native.deviceMemory('cuda');
  const total = Math.min(os.totalmem(), cgroupLimit() ?? Infinity);
  const used = cgroupUsage();
  const systemFree = meminfoAvailable() ?? os.freemem();
  // Inside a cgroup the limit binds first; outside it, what the kernel has left.
  const inCgroup = used !== undefined && Number.isFinite(cgroupLimit() ?? Infinity);
  // Blocks segvol caches count as used to the kernel, but the next allocations take them first.
  const cached = native.cachedBytes('cpu');
  const free = (inCgroup ? Math.min(total - used, systemFree) : systemFree) + cached;
  return { free: Math.min(total, Math.max(0, free)), total };
}

function readNumber(file: string): number | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    const value = Number(text);
    return text === 'max' || !Number.isFinite(value) ? undefined : value;
  } catch {
    return undefined;
  }
}

/** The memory limit of this process's cgroup (v2 memory.max, or v1 limit_in_bytes), if any. */
function cgroupLimit(): number | undefined {
  const limit = readNumber('/sys/fs/cgroup/memory.max') ?? readNumber('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  return limit !== undefined && limit < 2 ** 60 ? limit : undefined;
}

function cgroupUsage(): number | undefined {
  return readNumber('/sys/fs/cgroup/memory.current') ?? readNumber('/sys/fs/cgroup/memory/memory.usage_in_bytes');
}

/** /proc/meminfo's MemAvailable in bytes (Linux), or undefined. */
function meminfoAvailable(): number | undefined {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gives the blocks a device caches for reuse back to the OS (cpu) or the driver (cuda), and
 * returns their bytes: for a long-lived process after a large job (training, then serving
 * small requests). Tensors are untouched; the next large job maps its memory again.
 */
export function releaseCachedMemory(device: DeviceName = 'cpu'): number {
  if (device !== 'cpu' && device !== 'cuda') {
    throw new SegvolError('ERR_ARGUMENT', `releaseCachedMemory: expected device 'cpu' or 'cuda', received ${describe(device)}`);
  }
  return native.releaseCachedMemory(device);
}

/** Restarts memoryStats()'s peakBytes for a device from what is live now (to measure one step's peak). */
export function resetPeakMemory(device: DeviceName): void {
  native.resetPeakMemory(device);
}

export type ConvMath = 'fp32' | 'tf32' | 'bf16' | 'fp16';

/**
 * How convolutions compute, process-wide.
 * - 'fp32' (default): full float32 everywhere.
 * - 'tf32' (GPU): cuDNN may use tensor cores, which round convolution operands to a
 *   10-bit mantissa (float32 accumulation): faster on Ampere and newer, less exact.
 *   The CPU ignores it.
 * - 'bf16' (CPU and GPU): for convolutions of 16 or more input and output channels the
 *   operands (input, weights, incoming gradient) are rounded to bfloat16 and products
 *   accumulate in float32 (thinner convolutions stay float32). On the CPU oneDNN writes
 *   float32 results and needs AVX512-BF16; on the GPU cuDNN writes bfloat16 results
 *   (widened to float32) and needs compute capability 8.0. Weights, gradients, optimizer
 *   state and recurrent cell states stay float32 (mixed precision). Where neither the CPU
 *   nor a GPU can compute it, this throws ERR_DEVICE and the mode stays as it was.
 * - 'fp16' (GPU only): as 'bf16' on the GPU with IEEE half operands and results (range
 *   +-65504); train with loss scaling (Trainer precision 'fp16' does). CPU convolutions
 *   refuse it (ERR_DEVICE).
 * `Trainer({ precision })` sets it for the length of a run; see docs/precision.md.
 */
export function setConvMath(mode: ConvMath): void {
  native.setConvMath(mode);
}

/** Empty where the CPU backend computes bf16 convolutions (AVX512-BF16), else why not. */
export function cpuBf16Unsupported(): string {
  return native.cpuBf16Unsupported();
}

export function convMath(): ConvMath {
  return native.getConvMath();
}

/**
 * Returns once the device has finished every op queued so far. GPU ops run
 * asynchronously (a Promise resolves when the work is queued and its results are
 * ordered); call this before reading a clock. No-op on the CPU.
 */
export function synchronize(device: DeviceName): void {
  native.synchronize(device);
}
