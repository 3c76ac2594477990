import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MultiSampler, Random, VolumeSampler, writeNpy } from '../lib';
import { loadTrainingData, parseTrainConfig } from '../lib/cli/config';

test('rotation about z turns the image (bilinear) and keeps labels as class ids (nearest)', (t) => {
  const [D, H, W] = [3, 40, 40];
  // The image is the y coordinate; labels are 1 in the upper half, 2 in the lower.
  const volume = Float32Array.from({ length: D * H * W }, (_, i) => Math.floor(i / W) % H);
  const labels = Float32Array.from({ length: D * H * W }, (_, i) => (Math.floor(i / W) % H < H / 2 ? 1 : 2));
  const plain = new VolumeSampler({ volume, shape: [1, D, H, W], labels, flip: {} });
  const rotating = new VolumeSampler({ volume, shape: [1, D, H, W], labels, flip: {}, rotate: true });
  const random = new Random(3);
  const slope = (s: ReturnType<VolumeSampler['sample']>) => {
    const a = s.inputs.input!;
    return a[8 * 16 + 8]! - a[7 * 16 + 8]!;  // change per row at the centre of a 16x16 patch
  };
  const plainSlopes = Array.from({ length: 20 }, () => slope(plain.sample(random, [1, 16, 16])));
  t.true(plainSlopes.every((v) => Math.abs(v - 1) < 1e-6), 'unrotated: +1 per row');
  let negative = 0, fractional = 0;
  for (let i = 0; i < 40; ++i) {
    const s = rotating.sample(random, [1, 16, 16]);
    const v = slope(s);
    if (v < -0.2) ++negative;
    if (Math.abs(v - Math.round(v)) > 0.05) ++fractional;
    t.true(s.labels.every((l) => l === 1 || l === 2), 'labels are never blended');
  }
  t.true(negative > 5, `rotations beyond 90 degrees reverse the slope (${negative} of 40)`);
  t.true(fractional > 5, `most angles give non-integer slopes (${fractional} of 40)`);
});

test('class-aware sampling draws sub-volumes that hold the class', (t) => {
  const [D, H, W] = [4, 64, 64];
  const labels = new Float32Array(D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 50; y < 54; ++y) for (let x = 10; x < 14; ++x) labels[(z * H + y) * W + x] = 2;
  const volume = new Float32Array(D * H * W);
  const any = new VolumeSampler({ volume, shape: [1, D, H, W], labels });
  const aware = new VolumeSampler({ volume, shape: [1, D, H, W], labels, classAware: { label: 2, minVoxels: 4, tries: 500 } });
  const random = new Random(9);
  const holds = (s: ReturnType<VolumeSampler['sample']>) => s.labels.filter((v) => v === 2).length >= 4;
  const plainHits = Array.from({ length: 30 }, () => holds(any.sample(random, [2, 16, 16]))).filter(Boolean).length;
  const awareHits = Array.from({ length: 30 }, () => holds(aware.sample(random, [2, 16, 16]))).filter(Boolean).length;
  t.true(plainHits < 15, `plain sampling hit the class ${plainHits} times of 30`);
  t.is(awareHits, 30);
});

test('MultiSampler draws from several volumes in proportion to their size', (t) => {
  const make = (value: number, d: number) => new VolumeSampler({
    volume: new Float32Array(d * 8 * 8).fill(value), shape: [1, d, 8, 8], labels: new Float32Array(d * 8 * 8).fill(value),
  });
  const multi = new MultiSampler([make(1, 30), make(2, 10)], [30 * 64, 10 * 64]);
  const random = new Random(4);
  let fromFirst = 0;
  for (let i = 0; i < 400; ++i) {
    const s = multi.sample(random, [2, 4, 4]);
    if (s.inputs.input![0] === 1) ++fromFirst;
  }
  t.true(fromFirst > 260 && fromFirst < 340, `${fromFirst} of 400 from the volume holding 75% of the voxels`);
  t.deepEqual(multi.classCounts(3), [0, 30 * 64, 10 * 64]);
});

test('training data: NaN voxels and mismatched label shapes are refused, naming the file', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-data-'));
  const volume = new Float32Array(4 * 6 * 6).fill(1);
  volume[5] = NaN;
  writeNpy(path.join(dir, 'v.npy'), { shape: [4, 6, 6], data: volume });
  writeNpy(path.join(dir, 'l.npy'), { shape: [4, 6, 6], data: new Float32Array(144) });
  writeNpy(path.join(dir, 'short.npy'), { shape: [4, 6, 5], data: new Float32Array(120) });
  const config = (labels: string) => parseTrainConfig(JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2 }, data: { volume: 'v.npy', labels },
  }), 'x.json');
  t.throws(() => loadTrainingData(config('l.npy'), dir), { message: /data\.volume v\.npy: 1 voxels are NaN or infinite/ });
  volume[5] = 1;
  writeNpy(path.join(dir, 'v.npy'), { shape: [4, 6, 6], data: volume });
  t.throws(() => loadTrainingData(config('short.npy'), dir), { message: /data\.labels short\.npy: expected shape \(4, 6, 6\) like the volume, received \(4, 6, 5\)/ });
  const loaded = loadTrainingData(config('l.npy'), dir);
  t.deepEqual(loaded.data.inputs, { input: 1 });
  t.deepEqual(loaded.info, { normalize: 'slice', channels: { input: ['v'] } }, 'what the model file will record');
});

test('several named inputs are drawn as aligned windows: the same crop, rotation and flips for each', (t) => {
  const [D, H, W] = [3, 30, 30];
  const image = Float32Array.from({ length: 2 * D * H * W }, (_, i) => Math.sin(i * 0.37));
  const boundary = image.subarray(0, D * H * W).map((v) => 3 * v);  // channel 0 of the image, tripled
  const labels = Float32Array.from({ length: D * H * W }, (_, i) => i % 2);
  const sampler = new VolumeSampler({
    inputs: { image: { data: image, channels: 2 }, boundary: { data: boundary, channels: 1 } }, dims: [D, H, W], labels, rotate: true,
  });
  t.deepEqual(sampler.inputs, { image: 2, boundary: 1 });
  const random = new Random(5);
  for (let k = 0; k < 10; ++k) {
    const s = sampler.sample(random, [2, 8, 8]);
    t.is(s.inputs.image!.length, 2 * 2 * 64);
    const first = s.inputs.image!.subarray(0, 2 * 64);
    t.true(s.inputs.boundary!.every((v, i) => Math.abs(v - 3 * first[i]!) < 1e-5), `window ${k}: inputs not aligned`);
  }
  t.throws(() => new VolumeSampler({ inputs: { image: { data: image, channels: 1 } }, dims: [D, H, W], labels }),
    { message: /input 'image' has 5400 values, 1 channels of \(3, 30, 30\) need 2700/ });
  t.throws(() => new VolumeSampler({ volume: image, shape: [2, D, H, W], inputs: {}, labels } as never), { message: /either volume with shape/ });
});
