import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors, type NamedArray } from '../lib';

test('write then read round-trips names, shapes, values and metadata', (t) => {
  const tensors = new Map<string, NamedArray>([
    ['layers.0.dir0.wx', { shape: [4, 1, 3, 3], data: Float32Array.from({ length: 36 }, (_, i) => i / 7) }],
    ['bias', { shape: [4], data: Float32Array.from([1, -2, 3.5, NaN]) }],
  ]);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-')), 'w.safetensors');
  writeSafetensors(file, tensors, { step: '12' });
  const back = readSafetensors(file);
  t.deepEqual(back.metadata, { step: '12' });
  t.deepEqual([...back.tensors.keys()].sort(), ['bias', 'layers.0.dir0.wx']);
  t.deepEqual(back.tensors.get('layers.0.dir0.wx')!.shape, [4, 1, 3, 3]);
  t.deepEqual(back.tensors.get('layers.0.dir0.wx')!.data, tensors.get('layers.0.dir0.wx')!.data);
  t.true(Number.isNaN(back.tensors.get('bias')!.data[3]));
  t.deepEqual(fs.readdirSync(path.dirname(file)), ['w.safetensors'], 'no temporary file left behind');
});

test('reads files written by PyTorch (the golden fixtures)', (t) => {
  const f = readSafetensors(path.join(__dirname, 'fixtures', 'ops', 'conv2d_basic.safetensors'));
  t.deepEqual(f.tensors.get('w')!.shape, [5, 3, 3, 3]);
  t.is(JSON.parse(f.metadata.case!).op, 'conv');
});

test('corrupt or truncated bytes give ERR_FORMAT, never a crash', (t) => {
  const good = serializeSafetensors(new Map([['a', { shape: [3], data: Float32Array.from([1, 2, 3]) }]]));
  const bad = [
    Buffer.alloc(3),
    Buffer.concat([Buffer.from([255, 255, 255, 255, 0, 0, 0, 0]), Buffer.from('{}')]),
    good.subarray(0, good.length - 4),
    Buffer.concat([good.subarray(0, 8), Buffer.from('not json'.padEnd(good.readUInt32LE(0)))]),
  ];
  for (const bytes of bad) {
    const err = t.throws(() => parseSafetensors(bytes, 'bad.safetensors')) as Error & { code?: string };
    t.is(err.code, 'ERR_FORMAT', err.message);
    t.regex(err.message, /bad\.safetensors/);
  }
  // Random bytes: either a documented error or (vanishingly unlikely) a parse.
  for (let seed = 1; seed < 200; ++seed) {
    const bytes = Buffer.from(Array.from({ length: 16 + (seed % 50) }, (_, i) => (seed * 31 + i * 17) & 255));
    try {
      parseSafetensors(bytes);
    } catch (error) {
      t.is((error as { code?: string }).code, 'ERR_FORMAT');
    }
  }
  const missing = t.throws(() => readSafetensors('/nonexistent/w.safetensors')) as Error & { code?: string };
  t.is(missing.code, 'ERR_ARGUMENT');
});
