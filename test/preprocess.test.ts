// Pre-processing against OpenCV (test/fixtures/make_preprocess_fixtures.py).
// Gaussian: 1e-3 absolute on values of magnitude ~100 (float32 accumulation order).
// CLAHE: exact, grey level for grey level (segvol emulates OpenCV's float32
// arithmetic and round-half-to-even).
import test from 'ava';
import * as path from 'node:path';
import { clahe, gaussianBlur2d, mrPreprocess, normalizeSlices, readSafetensors } from '../lib';
import { assertClose } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'preprocess');
const load = (name: string) => readSafetensors(path.join(dir, `${name}.safetensors`));

test('Gaussian blur 31x31, sigma 5 matches cv2.GaussianBlur (reflect-101 borders)', (t) => {
  const f = load('gaussian');
  const image = f.tensors.get('image')!;
  const [h, w] = image.shape as [number, number];
  assertClose(t, gaussianBlur2d(image.data, h, w, 31, 5), f.tensors.get('blurred')!.data, { abs: 1e-3, rel: 1e-5 }, 'blurred');
});

for (const name of ['clahe16', 'clahe8_odd']) {
  test(`CLAHE matches cv2.createCLAHE (${name})`, (t) => {
    const f = load(name);
    const c = JSON.parse(f.metadata.case!) as { tiles: number; clipLimit: number };
    const image = f.tensors.get('image')!;
    const [h, w] = image.shape as [number, number];
    const ours = clahe(Uint8Array.from(image.data), h, w, { tiles: [c.tiles, c.tiles], clipLimit: c.clipLimit });
    const theirs = f.tensors.get('equalised')!.data;
    let off = 0, worst = 0;
    ours.forEach((v, i) => {
      const d = Math.abs(v - theirs[i]!);
      if (d > 0) ++off;
      worst = Math.max(worst, d);
    });
    t.log(`${off} of ${ours.length} pixels differ, by at most ${worst}`);
    t.is(worst, 0, `worst difference ${worst}`);
    t.is(off, 0, `${off} pixels differ`);
  });
}

test('per-slice standardisation and the MR pipeline', (t) => {
  const data = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => (i < 12 ? i : 5));
  const z = normalizeSlices(data, [2, 3, 4]);
  const first = z.subarray(0, 12);
  t.true(Math.abs(first.reduce((a, b) => a + b) / 12) < 1e-6);
  t.true(Math.abs(first.reduce((a, b) => a + b * b, 0) / 12 - 1) < 1e-5);
  t.true(z.subarray(12).every((v) => v === 0), 'a constant slice becomes 0');
  const mr = mrPreprocess(Float32Array.from({ length: 2 * 40 * 40 }, (_, i) => Math.sin(i / 9) * 50 + (i % 40)), [2, 40, 40]);
  t.true(mr.every((v) => v >= 0 && v <= 1));
  t.throws(() => normalizeSlices(new Float32Array(5), [2, 2]), { message: /holding 5 values/ });
});
