import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeVolume, parseNifti, readNpy, readVolume, stackModalities, writeVolume } from '../lib';
import { parseTiff } from '../lib/io/tiff';
import { rng } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'io');
const expected = (name: string) => readNpy(path.join(dir, `${name}.expected.npy`));

for (const [file, name] of [
  ['scaled_int16.nii', 'scaled_int16'], ['scaled_int16.nii.gz', 'scaled_int16'], ['four_d.nii.gz', 'four_d'],
  ['labels_uint8.nii', 'labels_uint8'], ['stack_uint16.tif', 'stack_uint16'], ['stack_float32.tif', 'stack_float32'],
  ['png_slices', 'png_slices'],
] as const) {
  test(`reads ${file} (written by nibabel / tifffile / Pillow) as the expected float32 (D, H, W) values`, (t) => {
    const v = readVolume(path.join(dir, file));
    const e = expected(name);
    t.deepEqual(v.shape, e.shape);
    t.deepEqual(v.data, e.data);
  });
}

test('NIfTI keeps voxel spacing (z, y, x) and the affine; dtype reported', (t) => {
  const v = readVolume(path.join(dir, 'scaled_int16.nii'));
  t.deepEqual(v.spacing, [3, Math.fround(0.9), Math.fround(0.8)]);
  t.is(v.dtype, 'int16');
  t.is(v.affine![2]![2], 3);
  const d = describeVolume(v);
  t.is(d.min, Math.min(...v.data));
});

test('write then read: NIfTI (float32, gz, uint8 labels, spacing), TIFF, npy and PNG slices', (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-io-'));
  const random = rng(3);
  const data = Float32Array.from({ length: 4 * 5 * 6 }, () => Math.round(random() * 200) / 4);
  const volume = { data, shape: [4, 5, 6], spacing: [2.5, 0.5, 0.5] as [number, number, number], dtype: 'float32' };
  for (const name of ['a.nii', 'a.nii.gz', 'a.tif', 'a.npy']) {
    writeVolume(path.join(out, name), volume);
    const back = readVolume(path.join(out, name));
    t.deepEqual(back.shape, [4, 5, 6], name);
    t.deepEqual(back.data, data, name);
    if (name.startsWith('a.nii')) t.deepEqual(back.spacing, [2.5, 0.5, 0.5]);
  }
  writeVolume(path.join(out, 'labels.nii.gz'), { ...volume, data: data.map((v) => v % 5) }, { dtype: 'uint8' });
  t.is(readVolume(path.join(out, 'labels.nii.gz')).dtype, 'uint8');
  writeVolume(path.join(out, 'slices') + '/', volume);
  const slices = readVolume(path.join(out, 'slices'));
  t.deepEqual(slices.shape, [4, 5, 6]);
  t.is(fs.readdirSync(path.join(out, 'slices')).length, 4);
});

test('bad files: a clear ERR_FORMAT naming the file and the problem', (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bad-'));
  const good = fs.readFileSync(path.join(dir, 'scaled_int16.nii'));
  fs.writeFileSync(path.join(out, 'cut.nii'), good.subarray(0, good.length - 10));
  const cut = t.throws(() => readVolume(path.join(out, 'cut.nii'))) as Error & { code?: string };
  t.is(cut.code, 'ERR_FORMAT');
  t.regex(cut.message, /cut\.nii: expected \d+ data bytes .* is it truncated\?/);
  fs.writeFileSync(path.join(out, 'fake.nii.gz'), good);
  t.throws(() => readVolume(path.join(out, 'fake.nii.gz')), { message: /ends in \.gz but the file is not gzip-compressed/ });
  fs.writeFileSync(path.join(out, 'broken.nii.gz'), fs.readFileSync(path.join(dir, 'scaled_int16.nii.gz')).subarray(0, 60));
  t.throws(() => readVolume(path.join(out, 'broken.nii.gz')), { message: /gzip stream is corrupt or truncated/ });
  const wrongType = Buffer.from(good);
  wrongType.writeInt16LE(1536, 70);  // float128
  t.throws(() => parseNifti(wrongType, 'x.nii'), { message: /unsupported datatype code 1536/ });
  t.throws(() => readVolume(path.join(out, 'missing.nii')), { message: /cannot read .*missing\.nii/ });
  t.throws(() => readVolume(path.join(dir, 'stack_uint16.expected.npy').replace('.npy', '.xyz')), { message: /cannot read|unknown format/ });
});

test('fuzz: random and truncated bytes give only the documented error (property test)', (t) => {
  const random = rng(11);
  const seeds = ['scaled_int16.nii', 'scaled_int16.nii.gz', 'stack_uint16.tif', 'stack_float32.tif'].map((f) => fs.readFileSync(path.join(dir, f)));
  let thrown = 0, parsed = 0;
  for (let round = 0; round < 400; ++round) {
    const seed = seeds[round % seeds.length]!;
    let bytes: Buffer;
    if (round % 3 === 0) {
      bytes = seed.subarray(0, Math.floor(random() * seed.length));  // truncated
    } else {
      bytes = Buffer.from(seed);
      const flips = 1 + Math.floor(random() * 20);
      for (let k = 0; k < flips; ++k) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);  // corrupted
    }
    const isTiff = round % seeds.length >= 2;
    try {
      if (isTiff) parseTiff(bytes, 'fuzz.tif'); else parseNifti(bytes, round % seeds.length === 1 ? 'fuzz.nii.gz' : 'fuzz.nii');
      ++parsed;
    } catch (error) {
      ++thrown;
      t.is((error as { code?: string }).code, 'ERR_FORMAT', `round ${round}: ${(error as Error).message}`);
    }
  }
  t.log(`${thrown} rejected, ${parsed} parsed (corruption in the data part still parses)`);
  t.true(thrown > 50);
});

test('modalities stack as channels only when their shapes agree', (t) => {
  const a = { data: new Float32Array(24).fill(1), shape: [2, 3, 4], dtype: 'float32' };
  const b = { data: new Float32Array(24).fill(2), shape: [2, 3, 4], dtype: 'float32' };
  const stacked = stackModalities([a, b]);
  t.deepEqual(stacked.shape, [2, 2, 3, 4]);
  t.is(stacked.data[24], 2);
  t.throws(() => stackModalities([a, { ...b, shape: [3, 2, 4] }], ['T1', 'FLAIR']), { message: /FLAIR has shape \(3, 2, 4\), T1 \(2, 3, 4\)/ });
});
