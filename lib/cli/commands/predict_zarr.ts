// segvol predict into a Zarr store (or an OME-Zarr image): block by block here, a share
// of the blocks (--block i/n, array jobs), or through a queue of worker processes. The
// input is a Zarr store read by regions, or any other volume read whole.
import { SegvolError } from '../../core/errors';
import type { Device } from '../../core/tensor';
import type { Normalization } from '../../data/preprocess';
import type { NonFinitePolicy } from '../../core/non_finite';
import { predictChunked, type ChunkedOutput, type ChunkedPlanOptions } from '../../inference/chunked';
import type { Overlap, Tta } from '../../inference/windows';
import { openVolume } from '../../io/volume_array';
import { isOmeZarrPath } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { loadModel } from '../../models/load';
import { terminal } from '../context';
import { predictQueued } from './predict_queue';

export interface ZarrPredictOptions {
  model: string; in: string; out: string; window?: number[]; overlap: Overlap; probabilities?: boolean; class?: number;
  normalize?: Normalization; block?: string; resume?: boolean; chunks?: number[]; queue?: string; queueName?: string; device: Device;
  tta?: Tta; windowBatch?: number; nonFinite?: NonFinitePolicy; ome?: boolean; omeLevels?: number; zarrVersion?: number;
  /** --queue: seconds an unreachable Redis is retried, and without a worker before a hint. */
  connectTimeout?: number; idleWarning?: number;
}

export async function predictToZarr(o: ZarrPredictOptions): Promise<void> {
  const zarrInput = isZarrPath(o.in);
  if (zarrInput && (!o.window || o.window.length !== 3)) {
    throw new SegvolError('ERR_ARGUMENT', 'out-of-core prediction from a Zarr input needs --window d,h,w (the volume is never read whole)');
  }
  if (o.window && o.window.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--window: expected d,h,w, received ${o.window.join(',')}`);
  if (o.chunks && o.chunks.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--chunks: expected d,h,w, received ${o.chunks.join(',')}`);
  if (o.zarrVersion !== undefined && o.zarrVersion !== 2 && o.zarrVersion !== 3) throw new SegvolError('ERR_ARGUMENT', `--zarr-version: expected 2 or 3, received ${o.zarrVersion}`);
  const ome = o.ome || o.omeLevels !== undefined || isOmeZarrPath(o.out);
  const model = loadModel(o.model).to(o.device);
  if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize };
  const output: ChunkedOutput = o.probabilities ? 'probabilities' : o.class !== undefined ? { class: o.class } : 'labels';
  // Another format is read whole (once per process); its window defaults to the whole volume, as in memory.
  const window = (o.window ?? (await openVolume(o.in)).shape.slice(-3)) as [number, number, number];
  const planOptions: ChunkedPlanOptions = {
    window, overlap: o.overlap, output, ...(o.chunks ? { chunks: o.chunks as [number, number, number] } : {}), ...(o.tta ? { tta: o.tta } : {}),
    ...(o.windowBatch ? { windowBatch: o.windowBatch } : {}), ...(o.nonFinite ? { nonFinite: o.nonFinite } : {}),
    ...(o.zarrVersion ? { zarrVersion: o.zarrVersion as 2 | 3 } : {}), ...(ome ? { ome: o.omeLevels ? { levels: o.omeLevels } : true } : {}),
  };
  try {
    if (o.queue) {
      await predictQueued(model, { ...o, queue: o.queue }, planOptions);
      return;
    }
    let part = { index: 0, count: 1 };
    if (o.block) {
      const m = /^(\d+)\/(\d+)$/.exec(o.block);
      if (!m) throw new SegvolError('ERR_ARGUMENT', `--block: expected i/n (the i-th of n block sets, from 0), received ${o.block}`);
      part = { index: Number(m[1]), count: Number(m[2]) };
    }
    const bar = terminal.progress('blocks');
    const r = await predictChunked(model, o.in, o.out, { ...planOptions, part, resume: o.resume === true, onProgress: (done, total) => bar.update(done / total, `block ${done}/${total}`) });
    bar.done();
    terminal.print(`wrote ${o.out}: ${r.computed} blocks computed, ${r.skipped} already written${part.count > 1 ? ` (part ${part.index}/${part.count} of ${r.blocks} blocks)` : ''}` +
      `${r.levels ? `; OME-Zarr levels: ${r.levels.computed} chunks computed, ${r.levels.skipped} already written` : ''}`);
  } finally {
    model.dispose();
  }
}
