// Object ids read exactly: .npy (int64 and uint64 included) and Zarr label volumes as
// float64; other formats through float32, refused where an id may have been rounded.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { metrics, readLabelFrame, readLabels, relabelSequential, writeVolume, ZarrWriter } from '../lib';

/** A little-endian .npy of 64-bit integers (what numpy writes for np.int64 / np.uint64 labels). */
function npy64(file: string, shape: number[], values: bigint[], unsigned = false): void {
  let header = `{'descr': '<${unsigned ? 'u8' : 'i8'}', 'fortran_order': False, 'shape': (${shape.join(', ')},), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  const body = unsigned ? new BigUint64Array(values) : new BigInt64Array(values);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(body.buffer)]));
}

test('ids above 2^24 stay distinct from .npy (int64, uint64) and Zarr; another format that would round them is refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-labels-'));
  // Two neurons whose ids differ by one above 2^24: float32 makes them one.
  const a = 2n ** 24n + 1n, b = 2n ** 24n;
  t.is(Math.fround(Number(a)), Math.fround(Number(b)), 'float32 merges them');
  npy64(path.join(dir, 'ids.npy'), [2, 2, 2], [0n, a, a, b, b, b, 0n, a]);
  const exact = await readLabels(path.join(dir, 'ids.npy'));
  t.deepEqual(exact.shape, [2, 2, 2]);
  t.deepEqual([...exact.data], [0, Number(a), Number(a), Number(b), Number(b), Number(b), 0, Number(a)]);
  npy64(path.join(dir, 'big.npy'), [4], [0n, 2n ** 40n, 2n ** 40n + 1n, 7n], true);
  t.deepEqual([...(await readLabels(path.join(dir, 'big.npy'))).data], [0, 2 ** 40, 2 ** 40 + 1, 7], 'uint64');
  const frame = await readLabelFrame(path.join(dir, 'ids.npy'), 1);
  t.deepEqual(frame.shape, [2, 2]);
  t.deepEqual([...frame.data], [Number(b), Number(b), 0, Number(a)]);
  // Zarr int32: read exactly, by frame too.
  const zarr = ZarrWriter.create(path.join(dir, 'ids.zarr'), { shape: [2, 2, 2], chunks: [1, 2, 2], dtype: 'int32' });
  await zarr.writeChunk([0, 0, 0], [0, 16777217, 16777217, 16777216]);
  await zarr.writeChunk([1, 0, 0], [16777216, 16777216, 0, 16777217]);
  t.deepEqual([...(await readLabels(path.join(dir, 'ids.zarr'))).data], [...exact.data]);
  t.deepEqual([...(await readLabelFrame(path.join(dir, 'ids.zarr'), 1)).data], [...frame.data]);
  // The adapted Rand error sees two objects, not one.
  const truth = Float64Array.from([0, 1, 1, 2, 2, 2, 0, 1]);
  t.is(metrics.rand(exact.data, truth).adaptedRandError, 0);
  // A float32 format with an id past 2^24 is refused: it may have been rounded.
  writeVolume(path.join(dir, 'ids.nii'), { data: Float32Array.from([0, 1, 2, 2 ** 25]), shape: [1, 2, 2], dtype: 'float32' });
  const error = await t.throwsAsync(readLabels(path.join(dir, 'ids.nii'))) as Error & { code?: string };
  t.is(error?.code, 'ERR_FORMAT');
  t.regex(error!.message, /voxel 3 holds the id 33554432, above 16777216 \(2\^24\).*store the labels as \.npy or Zarr/);
  fs.rmSync(dir, { recursive: true });
});

test('relabelSequential numbers the ids 1, 2, ... in order of value, 0 kept', (t) => {
  const r = relabelSequential([0, 3e9, 7, 7, 0, 2 ** 40, 3e9]);
  t.deepEqual([...r.labels], [0, 2, 1, 1, 0, 3, 2]);
  t.is(r.count, 3);
});
