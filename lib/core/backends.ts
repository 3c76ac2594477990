import { native, type DeviceName } from './native';

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
}

/**
 * Live tensors and bytes per device: watch it across training steps to find a
 * leak (tensors not disposed). Device bytes exclude the CUDA allocator's cache.
 */
export function memoryStats(): Record<'cpu' | 'cuda', DeviceMemory> {
  return native.memoryStats();
}

/** Restarts memoryStats()'s peakBytes for a device from what is live now (to measure one step's peak). */
export function resetPeakMemory(device: DeviceName): void {
  native.resetPeakMemory(device);
}

export type ConvMath = 'fp32' | 'tf32';

/**
 * How GPU convolutions compute. 'fp32' (default): full float32, comparable with the CPU.
 * 'tf32': cuDNN may use tensor cores, which round convolution operands to a 10-bit
 * mantissa (float32 accumulation): faster on Ampere and newer, less exact (see
 * docs/benchmarks.md for the measured cost). Process-wide; the CPU ignores it.
 */
export function setConvMath(mode: ConvMath): void {
  native.setConvMath(mode);
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
