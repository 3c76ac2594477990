// The consistent ConvLSTM's piece of the command line: `segvol predict` with one of
// its models propagates the objects of a labelled first frame (--reference) or of a
// watershed of the first frame through z.
import { SegvolError } from '../../core/errors';
import { readVolume, readVolumeAsync, writeVolumeAsync } from '../../io/volume_io';
import type { FamilyPredict } from '../family';
import { segmentConsistent } from './inference';
import type { ConsistentConvLstmNet } from './network';

export const consistentPredict: FamilyPredict = {
  options: [{
    flags: '--reference <file>',
    description: 'consistent ConvLSTM models: labels whose first frame starts the propagation (default: a watershed of the first frame)',
  }],
  async run(model, o, cli) {
    const reference = o.reference as string | undefined;
    const architecture = model.architecture();
    if (architecture.kind !== 'preset' || architecture.preset !== 'consistentConvLstm') return false;
    const net = model as ConsistentConvLstmNet;
    const volume = await readVolumeAsync(o.in);
    const dims = volume.shape.slice(-3) as [number, number, number];
    if (volume.shape.length === 4 && volume.shape[0] !== net.options.inChannels) {
      throw new SegvolError('ERR_SHAPE', `${o.in} has ${volume.shape[0]} channels, the model takes ${net.options.inChannels}`);
    }
    let firstFrame: Float32Array | undefined;
    if (reference) {
      const ref = readVolume(reference);
      const plane = dims[1] * dims[2];
      if (ref.shape.slice(-2).join() !== dims.slice(1).join()) {
        throw new SegvolError('ERR_SHAPE', `the reference ${reference} is (${ref.shape.join(', ')}); its frames must be ${dims[1]}x${dims[2]} like the volume's`);
      }
      firstFrame = ref.data.subarray(0, plane);
    }
    const bar = cli.progress('propagating objects');
    const labels = await segmentConsistent(net, volume.data, dims, {
      frames: o.window?.[0] ?? 8, ...(firstFrame ? { firstFrame } : {}), onProgress: (done, total) => bar.update(done / total, `sub-volume ${done}/${total}`),
    });
    bar.done();
    await writeVolumeAsync(o.out, { data: Float32Array.from(labels), shape: dims, dtype: 'float32', ...(volume.spacing ? { spacing: volume.spacing } : {}),
      ...(volume.affine ? { affine: volume.affine } : {}) });
    cli.print(`wrote ${o.out}: the ${new Set(labels.subarray(0, dims[1] * dims[2])).size - 1} objects of the first frame through ${dims[0]} frames ` +
      `(${reference ? 'from the reference labels' : 'from a watershed of the first frame'})`);
    return true;
  },
};
