// OME-Zarr output: a prediction's multiscale image (level 0 the same bytes as in memory, the
// levels below by mode or mean, the scale from the input's spacing), opened by zarrita here
// and checked with tensorstore against the OME-NGFF rules (test/fixtures/make_ome_fixtures.ts
// wrote the committed images and ome_tensorstore.json, the report of that check); convert
// keeps the voxel size; class ids are integers in every format that has them.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openZarr, predictChunked, predictVolume, readZarr, Tensor, writeZarr } from '../lib';
import { serializeNifti } from '../lib/io/nifti';
import { readVolume } from '../lib/io/volume_io';
import { readNpy } from '../lib/io/npy';
import { omeDims, omeModel, omeVolume, writeOmeFixtures } from './fixtures/make_ome_fixtures';

const fixtures = path.join(__dirname, 'fixtures', 'zarr');
const root = path.join(__dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, ['--require=ts-node/register', path.join(root, 'lib', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8' });

/** Level l + 1 from level l by hand: each 2x2(x2) group's mode (ties to the smaller) or mean; factors per axis. */
function downsample(values: Float32Array, shape: readonly number[], factor: readonly number[], how: 'mode' | 'mean'): { data: Float32Array; shape: number[] } {
  const out = shape.map((n, a) => Math.ceil(n / factor[a]!));
  const strides = (s: readonly number[]) => s.map((_, a) => s.slice(a + 1).reduce((p, q) => p * q, 1));
  const si = strides(shape), so = strides(out);
  const data = new Float32Array(out.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; ++i) {
    const at = out.map((_, a) => Math.floor(i / so[a]!) % out[a]!);
    const group: number[] = [];
    const visit = (a: number, offset: number) => {
      if (a === shape.length) {
        group.push(values[offset]!);
        return;
      }
      for (let k = at[a]! * factor[a]!; k < Math.min((at[a]! + 1) * factor[a]!, shape[a]!); ++k) visit(a + 1, offset + k * si[a]!);
    };
    visit(0, 0);
    if (how === 'mean') data[i] = group.reduce((p, q) => p + q, 0) / group.length;
    else {
      const counts = new Map<number, number>();
      for (const v of group) counts.set(v, (counts.get(v) ?? 0) + 1);
      data[i] = [...counts].sort((p, q) => q[1] - p[1] || p[0] - q[0])[0]![0];
    }
  }
  return { data, shape: out };
}

/** A store's files (relative paths), and its metadata files' contents. */
function layout(dir: string): { files: string[]; metadata: Record<string, unknown> } {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === '.segvol') continue;
      if (e.isDirectory()) walk(path.join(d, e.name));
      else files.push(path.relative(dir, path.join(d, e.name)).split(path.sep).join('/'));
    }
  };
  walk(dir);
  files.sort();
  const metadata = Object.fromEntries(files.filter((f) => /(^|\/)(\.zarray|\.zattrs|\.zgroup|zarr\.json)$/.test(f)).map((f) => [f, JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))]));
  return { files, metadata };
}

test('OME-Zarr predictions: level 0 is the in-memory prediction, lower levels its mode (labels) or mean (probabilities), scale from the input spacing; zarrita opens them; resume skips everything', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-ome-'));
  const { model, labels, probabilities, nifti, zarr } = await writeOmeFixtures(tmp);
  const memory = (await predictVolume(model, Tensor.fromArray(omeVolume(), [1, 1, ...omeDims]), { window: [4, 8, 8] })).toArray();
  const n = omeDims[0] * omeDims[1] * omeDims[2];
  const argmax = Float32Array.from({ length: n }, (_, v) => [0, 1, 2].reduce((best, c) => (memory[c * n + v]! > memory[best * n + v]! ? c : best), 0));
  // Labels, NGFF 0.4: the group opens at level 0 with the NIfTI's spacing and unit.
  const image = await openZarr(labels);
  t.deepEqual(image.shape, [...omeDims]);
  t.deepEqual(image.spacing, [2, 0.5, 0.5]);
  t.is(image.unit, 'micrometer');
  t.is(image.dtype, 'uint8');
  t.deepEqual([...(await readZarr(labels)).data], [...argmax], 'level 0: the class ids predictVolume gives');
  const attrs = JSON.parse(fs.readFileSync(path.join(labels, '.zattrs'), 'utf8'));
  t.deepEqual(attrs.multiscales[0].axes, ['z', 'y', 'x'].map((name) => ({ name, type: 'space', unit: 'micrometer' })));
  t.deepEqual(attrs.multiscales[0].datasets.map((d: { coordinateTransformations: Array<{ scale: number[] }> }) => d.coordinateTransformations[0]!.scale),
    [[2, 0.5, 0.5], [2, 1, 1], [2, 2, 2]], 'y and x halve; z (2 um) stays while the in-plane voxel is finer');
  t.deepEqual(attrs['image-label'], { version: '0.4' });
  let level: { data: Float32Array; shape: number[] } = { data: argmax, shape: [...omeDims] };
  for (const l of [1, 2]) {
    level = downsample(level.data, level.shape, [1, 2, 2], 'mode');
    const read = await readZarr(path.join(labels, String(l)));
    t.deepEqual(read.shape, level.shape);
    t.deepEqual([...read.data], [...level.data], `labels level ${l}: the mode of level ${l - 1}`);
  }
  // Probabilities, NGFF 0.5 on Zarr v3: (c, z, y, x), no spacing known, so every spatial axis halves.
  const group = JSON.parse(fs.readFileSync(path.join(probabilities, 'zarr.json'), 'utf8'));
  t.is(group.attributes.ome.version, '0.5');
  t.deepEqual(group.attributes.ome.multiscales[0].axes.map((a: { name: string; type: string }) => `${a.name}:${a.type}`), ['c:channel', 'z:space', 'y:space', 'x:space']);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(probabilities, '1', 'zarr.json'), 'utf8')).dimension_names, ['c', 'z', 'y', 'x']);
  const p0 = await readZarr(probabilities);
  t.deepEqual(Buffer.from(p0.data.buffer), Buffer.from(memory.buffer), 'level 0: the same floats as in memory');
  const mean = downsample(memory, [3, ...omeDims], [1, 2, 2, 2], 'mean');
  const p1 = await readZarr(path.join(probabilities, '1'));
  t.deepEqual(p1.shape, [3, 3, 10, 9]);
  t.true(p1.data.every((v, i) => Math.abs(v - mean.data[i]!) < 1e-6), 'level 1: the mean of level 0');
  // Resume: every block and every level chunk is done.
  const again = await predictChunked(model, nifti, labels, { window: [4, 8, 8], chunks: [4, 8, 8], ome: true });
  t.deepEqual([again.computed, again.levels?.computed, again.levels?.skipped], [0, 0, 8 + 2]);
  await t.throwsAsync(() => predictChunked(model, zarr, probabilities, { window: [4, 8, 8], output: 'probabilities', chunks: [6, 16, 16] }),
    { message: /holds a different job .*OME-Zarr/ });
  fs.rmSync(tmp, { recursive: true });
});

test('tensorstore checked the committed OME-Zarr outputs (ome_tensorstore.json): zarrita reads the same levels, and segvol still writes that layout and metadata', async (t) => {
  const report = JSON.parse(fs.readFileSync(path.join(fixtures, 'ome_tensorstore.json'), 'utf8')) as Record<string, {
    version: string; label: boolean; errors: string[]; levels: Array<{ path: string; shape: number[]; dtype: string; scale: number[]; sum: number; min: number; max: number }>;
  }>;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-ome-layout-'));
  await writeOmeFixtures(tmp);
  for (const name of ['segvol_labels.ome.zarr', 'segvol_probabilities.ome.zarr']) {
    const entry = report[name]!;
    t.deepEqual(entry.errors, [], `${name}: the OME-NGFF ${entry.version} rules hold`);
    for (const level of entry.levels) {
      const read = await readZarr(path.join(fixtures, name, level.path));
      t.deepEqual(read.shape, level.shape, `${name}/${level.path}`);
      t.is(read.dtype, level.dtype);
      t.is(read.data.reduce((s, v) => s + v, 0), level.sum, `${name}/${level.path}: zarrita and tensorstore read the same values`);
    }
    const committed = layout(path.join(fixtures, name)), fresh = layout(path.join(tmp, name));
    t.deepEqual(fresh.files, committed.files, `${name}: the same files`);
    t.deepEqual(fresh.metadata, committed.metadata, `${name}: the same metadata`);
  }
  // With Python and tensorstore here, the check runs on this run's output too.
  const python = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, 'fixtures', 'make_zarr_fixtures.py'), 'check-ome', tmp], { encoding: 'utf8' });
  if (python.status !== 0) t.log(`tensorstore check skipped: ${(python.stderr || '').trim().split('\n').pop()}`);
  else for (const [name, entry] of Object.entries(JSON.parse(python.stdout) as typeof report)) t.deepEqual(entry.errors, [], `tensorstore on ${name}`);
  fs.rmSync(tmp, { recursive: true });
});

test('segvol predict --out x.ome.zarr from a NIfTI volume; --ome-levels; resume; convert keeps the spacing (OME-Zarr and plain Zarr) and class ids stay integers', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-ome-cli-'));
  const { nifti } = await writeOmeFixtures(tmp);
  const modelFile = path.join(tmp, 'model.safetensors');
  omeModel().save(modelFile);
  const out = path.join(tmp, 'cli.ome.zarr');
  const r = cli('predict', '--model', modelFile, '--in', nifti, '--out', out, '--window', '4,8,8', '--chunks', '4,8,8', '--ome-levels', '2');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /18 blocks computed, 0 already written; OME-Zarr levels: 8 chunks computed, 0 already written/);
  t.deepEqual(fs.readdirSync(out).filter((f) => /^\d+$/.test(f)).sort(), ['0', '1']);
  t.deepEqual((await openZarr(out)).spacing, [2, 0.5, 0.5]);
  const resumed = cli('predict', '--model', modelFile, '--in', nifti, '--out', out, '--window', '4,8,8', '--chunks', '4,8,8', '--ome-levels', '2', '--resume');
  t.regex(resumed.stdout, /0 blocks computed, 18 already written; OME-Zarr levels: 0 chunks computed, 8 already written/);
  // Zarr output with a non-Zarr input reads it whole; its window defaults to the volume.
  const plain = cli('predict', '--model', modelFile, '--in', nifti, '--out', path.join(tmp, 'plain.zarr'));
  t.is(plain.status, 0, plain.stderr);
  t.deepEqual((await openZarr(path.join(tmp, 'plain.zarr'))).spacing, [2, 0.5, 0.5], 'a plain Zarr output records the spacing too');
  const bad = cli('predict', '--model', modelFile, '--in', nifti, '--out', path.join(tmp, 'x.npy'), '--ome');
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--ome, --ome-levels and --zarr-version are for Zarr output/);
  // convert: NIfTI to OME-Zarr and to plain Zarr keeps spacing and unit, and back to NIfTI.
  for (const [name, version] of [['conv.ome.zarr', '2'], ['conv3.ome.zarr', '3'], ['conv.zarr', '2']] as const) {
    const c = cli('convert', nifti, path.join(tmp, name), '--zarr-version', version);
    t.is(c.status, 0, c.stderr);
    const back = await openZarr(path.join(tmp, name));
    t.deepEqual([back.spacing, back.unit], [[2, 0.5, 0.5], 'micrometer'], name);
  }
  t.true(fs.existsSync(path.join(tmp, 'conv.ome.zarr', '0', '.zarray')) && fs.existsSync(path.join(tmp, 'conv3.ome.zarr', '0', 'zarr.json')));
  const round = cli('convert', path.join(tmp, 'conv.ome.zarr'), path.join(tmp, 'round.nii.gz'));
  t.is(round.status, 0, round.stderr);
  const nii = readVolume(path.join(tmp, 'round.nii.gz'));
  t.deepEqual([nii.spacing, nii.unit], [[2, 0.5, 0.5], 'micrometer']);
  // Class ids: uint8 in .npy, Zarr, NIfTI and MetaImage alike.
  for (const name of ['ids.npy', 'ids.zarr', 'ids.nii.gz', 'ids.mha']) {
    const p = cli('predict', '--model', modelFile, '--in', nifti, '--out', path.join(tmp, name), '--window', '4,8,8');
    t.is(p.status, 0, `${name}: ${p.stderr}`);
  }
  t.true(fs.readFileSync(path.join(tmp, 'ids.npy')).toString('latin1').includes("'descr': '|u1'"));
  t.true(fs.readFileSync(path.join(tmp, 'ids.zarr', '.zarray'), 'utf8').includes('"dtype": "|u1"'));
  t.is(readVolume(path.join(tmp, 'ids.nii.gz')).dtype, 'uint8');
  t.true(fs.readFileSync(path.join(tmp, 'ids.mha')).toString('latin1').includes('ElementType = MET_UCHAR'));
  t.deepEqual([...readNpy(path.join(tmp, 'ids.npy')).data], [...(await readZarr(path.join(tmp, 'ids.zarr'))).data], 'the same class ids in .npy and Zarr');
  const npy = cli('convert', nifti, path.join(tmp, 'v8.npy'), '--dtype', 'uint8');
  t.is(npy.status, 1, 'a lossy integer .npy is refused');
  t.regex(npy.stderr, /npy .*v8\.npy: uint8 cannot hold these values/);
  fs.rmSync(tmp, { recursive: true });
});

test('an OME-Zarr fixture written by tensorstore reads with its unit; writeZarr keeps nested chunk folders', async (t) => {
  t.is((await openZarr(path.join(fixtures, 'image.ome.zarr'))).unit, 'micrometer');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-ome-sep-'));
  await writeZarr(path.join(tmp, 'nested.zarr'), Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], { chunks: [1, 2, 2], dimensionSeparator: '/' });
  t.true(fs.existsSync(path.join(tmp, 'nested.zarr', '1', '1', '1')));
  t.deepEqual([...(await readZarr(path.join(tmp, 'nested.zarr'))).data], Array.from({ length: 24 }, (_, i) => i));
  fs.writeFileSync(path.join(tmp, 'a.nii'), serializeNifti(new Float32Array(8), [2, 2, 2], { spacing: [1, 1, 1] }));
  t.is(readVolume(path.join(tmp, 'a.nii')).unit, 'millimeter', 'NIfTI written without a unit says millimeter, as before');
  fs.rmSync(tmp, { recursive: true });
});
