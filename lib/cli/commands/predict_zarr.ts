// segvol predict into a Zarr store: block by block here, a share of the blocks
// (--block i/n, array jobs), or through a queue of worker processes.
import { SegvolError } from '../../core/errors';
import type { Device } from '../../core/tensor';
import type { Normalization } from '../../data/preprocess';
import { predictChunked, type ChunkedOutput } from '../../inference/chunked';
import { isZarrPath } from '../../io/zarr';
import { loadModel } from '../../models/load';
import { terminal } from '../context';
import { predictQueued } from './predict_queue';

export interface ZarrPredictOptions {
  model: string; in: string; out: string; window?: number[]; overlap: number; probabilities?: boolean; class?: number;
  normalize?: Normalization; block?: string; resume?: boolean; chunks?: number[]; queue?: string; queueName?: string; connectTimeout?: number; idleWarning?: number; device: Device;
}

export async function predictToZarr(o: ZarrPredictOptions): Promise<void> {
  if (!isZarrPath(o.in)) {
    throw new SegvolError('ERR_ARGUMENT', `out-of-core prediction reads a Zarr input; convert ${o.in} first: segvol convert ${o.in} ${o.in.replace(/\.[^./]+(\.gz)?$/, '')}.zarr`);
  }
  if (!o.window || o.window.length !== 3) throw new SegvolError('ERR_ARGUMENT', 'out-of-core prediction needs --window d,h,w (the volume is never read whole)');
  if (o.chunks && o.chunks.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--chunks: expected d,h,w, received ${o.chunks.join(',')}`);
  const model = loadModel(o.model).to(o.device);
  if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize };
  const output: ChunkedOutput = o.probabilities ? 'probabilities' : o.class !== undefined ? { class: o.class } : 'labels';
  const planOptions = { window: o.window as [number, number, number], overlap: o.overlap, output, ...(o.chunks ? { chunks: o.chunks as [number, number, number] } : {}) };
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
    terminal.print(`wrote ${o.out}: ${r.computed} blocks computed, ${r.skipped} already written${part.count > 1 ? ` (part ${part.index}/${part.count} of ${r.blocks} blocks)` : ''}`);
  } finally {
    model.dispose();
  }
}
