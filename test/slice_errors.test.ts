// The worst slices of an evaluation: what "wrong" means for class maps, boundary maps and
// instance segmentations, and the order they come in.
import test from 'ava';
import { worstSlices } from '../lib/evaluation/slice_errors';

const shape: [number, number, number] = [3, 2, 4];

test('class maps: the share of voxels whose class differs, most first, slices without errors left out', (t) => {
  const truth = new Float32Array(24).fill(1);
  const pred = Float32Array.from(truth);
  pred[8] = 2;                      // slice 1: 1 of 8
  pred[16] = pred[17] = pred[18] = 0;  // slice 2: 3 of 8
  t.deepEqual(worstSlices(pred, truth, shape, { kind: 'classes' }), [
    { axis: 0, index: 2, error: 3 / 8, measure: 'share of voxels wrong' },
    { axis: 0, index: 1, error: 1 / 8, measure: 'share of voxels wrong' },
  ]);
  t.deepEqual(worstSlices(pred, truth, shape, { kind: 'classes', count: 1 }).map((s) => s.index), [2]);
});

test('boundary maps: probabilities on the wrong side of 0.5 count, near misses on the right side do not', (t) => {
  const truth = Float32Array.from({ length: 24 }, (_, i) => (i % 4 === 0 ? 1 : 0));
  const pred = Float32Array.from(truth, (v) => (v ? 0.8 : 0.3));
  pred[1] = 0.7;  // slice 0: one pixel wrong
  t.deepEqual(worstSlices(pred, truth, shape, { kind: 'boundary' }).map((s) => [s.index, s.error]), [[0, 1 / 8]]);
});

test('instance segmentations: ids renumbered are not errors; a merge is, as adapted Rand error', (t) => {
  const truth = Float32Array.from({ length: 24 }, (_, i) => 1 + (i % 4 < 2 ? 0 : 1) + 10 * Math.floor(i / 8));
  const renumbered = truth.map((v) => v + 1000);
  t.deepEqual(worstSlices(renumbered, truth, shape, { kind: 'instances' }), [], 'the same segments under other ids');
  t.true(worstSlices(renumbered, truth, shape, { kind: 'classes' }).length === 3, 'compared as classes, every voxel would be wrong');
  const merged = Float32Array.from(renumbered);
  for (let i = 8; i < 16; ++i) merged[i] = 7;  // slice 1: its two segments merged
  const worst = worstSlices(merged, truth, shape, { kind: 'instances' });
  t.deepEqual(worst.map((s) => s.index), [1]);
  t.is(worst[0]!.measure, 'adapted Rand error');
  t.true(worst[0]!.error > 0.3 && worst[0]!.error < 1, String(worst[0]!.error));
});
