// npm run bench -- data: reading and per-slice normalisation of the two volumes
// against tifffile/nibabel (benchmarks/peer_data.py), and drawing a training window
// against the training step it feeds.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { normalizeSlices, Optimizer, presets, Random, readVolume, Tensor, VolumeSampler, writeVolume } from '../../lib';
import { elapsedMs, round, supervisedStep, timeOnDevice, versus, type Suite } from '../common';
import { runPython } from '../processes';
import { paperStep } from './step';

export const data: Suite = {
  name: 'data',
  async run({ repeats }) {
    const dir = fs.mkdtempSync(`${os.tmpdir()}/segvol-data-bench-`);
    const stack = Float32Array.from({ length: 30 * 512 * 512 }, (_, i) => (i * 2654435761) % 65536);
    writeVolume(`${dir}/stack.tif`, { data: stack, shape: [30, 512, 512], dtype: 'float32' }, { dtype: 'uint16' });
    const mr = Float32Array.from({ length: 48 * 240 * 240 }, (_, i) => ((i * 40503) % 4096) - 1024);
    writeVolume(`${dir}/mr.nii.gz`, { data: mr, shape: [48, 240, 240], dtype: 'float32' }, { dtype: 'int16' });
    const readAndNormalize = (file: string) => timeOnDevice(() => { const v = readVolume(file); normalizeSlices(v.data, v.shape); }, repeats, { warmup: 0 });
    const tiffMs = await readAndNormalize(`${dir}/stack.tif`);
    const niftiMs = await readAndNormalize(`${dir}/mr.nii.gz`);
    const r = runPython('peer_data.py', [`${dir}/stack.tif`, `${dir}/mr.nii.gz`]);
    const peer = 'stdout' in r ? (JSON.parse(r.stdout.trim()) as { tiff: number; nifti: number }) : null;
    if ('error' in r) console.error(`python peer unavailable: ${r.error}`);
    for (const [name, ms, peerMs] of [['read + normalise 30x512x512 uint16 TIFF', tiffMs, peer?.tiff], ['read + normalise 48x240x240 int16 NIfTI (.nii.gz)', niftiMs, peer?.nifti]] as const) {
      console.log(JSON.stringify({ case: name, ...versus(ms, peerMs, 1, 'python'), target_ms: 1000 }));
    }
    // Sampling a 64x64x8 sub-volume (with rotation and flips) vs one training step of a one-layer PyraMiD network on it.
    const v = readVolume(`${dir}/mr.nii.gz`);
    const sampler = new VolumeSampler({ volume: normalizeSlices(v.data, v.shape), shape: [1, 48, 240, 240], labels: new Float32Array(48 * 240 * 240), rotate: true });
    const random = new Random(1);
    const sampleMs = await timeOnDevice(() => { sampler.sample(random, [8, 64, 64]); }, repeats, { warmup: 0 });
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [16], fc: [], kernel: 7 });
    const optimizer = new Optimizer({ kind: 'rmspropMomentum' });
    const x = Tensor.full([1, 1, 8, 64, 64], 0.5);
    const labels = Tensor.full([1, 8, 64, 64], 0);
    await supervisedStep(model, optimizer, x, labels, paperStep);  // warm-up: primitives built
    const stepMs = await elapsedMs(() => supervisedStep(model, optimizer, x, labels, paperStep));
    console.log(JSON.stringify({ case: 'sample 8x64x64 (rotation, flips) vs one PyraMiD-LSTM layer training step on it', sample_ms: round(sampleMs, 2),
      step_ms: round(stepMs, 1), sampling_share: round(sampleMs / stepMs, 4) }));
    for (const t of [x, labels]) t.dispose();
    model.dispose();
    fs.rmSync(dir, { recursive: true });
  },
};
