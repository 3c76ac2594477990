// segvol view: a local web page for volumes, their labels, predictions and probabilities
// (three orthogonal views, overlays, windowing), a training log as it grows, and an
// evaluation's scores and worst slices. Served on 127.0.0.1 until Ctrl-C.
import type { Command } from 'commander';
import { SegvolError } from '../../core/errors';
import { readSafetensors } from '../../io/safetensors';
import { modelDescription } from '../../serialize/model_file';
import { onStopSignals } from '../signals';
import { startViewer, type ViewerOptions } from '../viewer/server';
import type { LayerSource } from '../viewer/layers';

export interface ViewOptions {
  labels?: string;
  pred?: string;
  prob?: string;
  model?: string;
  log?: string;
  eval?: string;
  spacing?: number[];
  host: string;
  port: number;
}

/** The viewer's options from the command line: one layer per file, names from the model file. */
export function viewerOptions(volumes: readonly string[], o: ViewOptions): ViewerOptions {
  let classes: string[] | undefined, channels: string[] | undefined;
  if (o.model) {
    const info = modelDescription(readSafetensors(o.model), `segvol view --model ${o.model}`)?.info;
    if (!info) throw new SegvolError('ERR_FORMAT', `segvol view: ${o.model} holds no segvol model description; give a model file saved by segvol`);
    classes = info.classes;
    channels = info.channels ? Object.values(info.channels)[0] : undefined;
  }
  const layers: LayerSource[] = volumes.map((location, i) => ({
    id: i === 0 ? 'image' : `image${i}`, role: 'image', location,
    // One file of C channels takes the model's channel names; several files are one modality each.
    ...(channels ? { channelNames: volumes.length === 1 ? channels : [channels[i] ?? location] } : {}),
  }));
  if (o.labels) layers.push({ id: 'labels', role: 'labels', location: o.labels });
  if (o.pred) layers.push({ id: 'pred', role: 'pred', location: o.pred });
  if (o.prob) layers.push({ id: 'prob', role: 'prob', location: o.prob });
  if (!volumes.length && layers.length) throw new SegvolError('ERR_ARGUMENT', 'segvol view: give the image volume the labels, predictions or probabilities lie over');
  if (o.spacing && (o.spacing.length !== 3 || !o.spacing.every((v) => Number.isFinite(v) && v > 0))) {
    throw new SegvolError('ERR_ARGUMENT', `--spacing: expected three positive numbers z,y,x, received ${o.spacing.join(',')}`);
  }
  return {
    layers, ...(classes ? { classes } : {}), ...(o.log ? { log: o.log } : {}), ...(o.eval ? { evaluation: o.eval } : {}),
    ...(o.spacing ? { spacing: o.spacing as [number, number, number] } : {}), host: o.host, port: o.port,
  };
}

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new SegvolError('ERR_ARGUMENT', `--port must be an integer in 0..65535, received ${JSON.stringify(v)}`);
  return n;
};

export function registerView(program: Command): void {
  program.command('view')
    .description('show volumes, labels, predictions, a training log or an evaluation in a local web page (served on 127.0.0.1 until Ctrl-C)')
    .argument('[volumes...]', 'image volumes in any format segvol reads (several: one modality each)')
    .option('--labels <file>', 'true labels, drawn over the image')
    .option('--pred <file>', 'predicted labels, drawn over the image')
    .option('--prob <file>', 'probabilities (D, H, W) or (C, D, H, W), drawn over the image')
    .option('--model <file.safetensors>', 'a segvol model file: the class and channel names')
    .option('--spacing <z,y,x>', 'the voxel size to draw with, for files that record none (.npy): 4,1,1 draws z planes four times as thick', (v) => v.split(',').map(Number))
    .option('--log <file.log.jsonl>', 'a training log to follow as it grows')
    .option('--eval <file.json>', 'an evaluation written by segvol evaluate --out')
    .option('--host <address>', 'the address to listen on; anything but loopback lets other machines read the given files', '127.0.0.1')
    .option('--port <n>', 'the port; 0 picks a free one', port, 0)
    .action(async (volumes: string[], o: ViewOptions) => {
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host)) {
        console.error(`segvol view: warning: listening on ${o.host}: anyone who can reach this address can read the volumes given`);
      }
      const viewer = await startViewer(viewerOptions(volumes, o));
      console.log(`segvol view: ${viewer.url}`);
      await new Promise<void>((resolve) => {
        const off = onStopSignals(() => {
          off();
          void viewer.close().then(resolve);
        });
      });
    });
}
