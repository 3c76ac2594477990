// The forms of the adapted Rand error against an independent implementation
// (test/fixtures/make_rand_fixtures.py: the SNEMI3D challenge script's arithmetic on a
// sparse contingency table, and scikit-image's adapted_rand_error), to 1e-9 absolute.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { metrics, type AdaptedRandForm, type AdaptedRandScores } from '../lib';

interface Case {
  name: string;
  note: string;
  ignoreTruthZero: boolean;
  pred: number[];
  truth: number[];
  snemi3d: AdaptedRandScores;
  singletons: AdaptedRandScores;
  skimage: AdaptedRandScores;
}
const { cases } = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'rand', 'cases.json'), 'utf8')) as { cases: Case[] };
const forms: AdaptedRandForm[] = ['snemi3d', 'singletons', 'skimage'];
const fields = ['adaptedRandError', 'precision', 'recall'] as const;

function near(t: { true(c: boolean, m?: string): void }, got: AdaptedRandScores, want: AdaptedRandScores, what: string): void {
  for (const k of fields) t.true(Math.abs(got[k] - want[k]) <= 1e-9, `${what} ${k}: ${got[k]} vs ${want[k]}`);
}

test('the fixtures cover the cases the forms differ on', (t) => {
  t.true(cases.length >= 12);
  for (const name of ['toy', 'pred_zeros', 'truth_zeros', 'both_zeros', 'none', 'all_zero_prediction', 'single_segment']) {
    t.truthy(cases.find((c) => c.name === name), name);
  }
  t.true(cases.some((c) => c.truth.some((v) => v === 2 ** 31 - 1) && c.pred.some((v) => v < -1e9)), 'large and negative ids');
});

for (const c of cases) {
  test(`adapted Rand error, precision and recall of every form match the reference (${c.name}: ${c.note})`, (t) => {
    // Int32Array and Float64Array carry the same 32-bit ids.
    for (const make of [(v: number[]) => Int32Array.from(v), (v: number[]) => Float64Array.from(v)]) {
      const r = metrics.rand(make(c.pred), make(c.truth), { ignoreTruthZero: c.ignoreTruthZero });
      t.is(r.adaptedRandForm, 'snemi3d');
      for (const form of forms) near(t, r[form], c[form], form);
      near(t, r, c.snemi3d, 'default');
    }
    for (const form of forms) {
      const r = metrics.rand(Int32Array.from(c.pred), Int32Array.from(c.truth), { ignoreTruthZero: c.ignoreTruthZero, adaptedRand: form });
      t.is(r.adaptedRandForm, form);
      near(t, r, c[form], `adaptedRand: '${form}'`);
    }
  });
}

test('the toy volume of docs/metrics.md: a predicted 0 costs SNEMI3D recall only, scikit-image sees one merged segment', (t) => {
  // Two truth segments of 4 voxels; the prediction labels each half and leaves the rest 0.
  const truth = Int32Array.from([1, 1, 1, 1, 2, 2, 2, 2]);
  const pred = Int32Array.from([3, 3, 0, 0, 4, 4, 0, 0]);
  const r = metrics.rand(pred, truth);
  // SNEMI3D: joint = prediction = 2^2 * 2 + 4 / 8; truth = 2 * 4^2.
  const joint = 8 + 4 / 8;
  t.true(Math.abs(r.precision - 1) < 1e-12);
  t.true(Math.abs(r.recall - joint / 32) < 1e-12);
  t.true(Math.abs(r.singletons.recall - 12 / 32) < 1e-12, 'four singletons add 4, not 4 / 8');
  // scikit-image: 0 is one segment of 4 that spans both truth segments (a merge). Pairs:
  // joint 16 - 8, truth 32 - 8, prediction 24 - 8.
  t.true(Math.abs(r.skimage.precision - 8 / 24) < 1e-12 && Math.abs(r.skimage.recall - 8 / 16) < 1e-12);
  t.true(Math.abs(r.skimage.adaptedRandError - 0.6) < 1e-12);
});

test('SNEMI3D n counts every voxel given: truth-0 voxels change the predicted-0 term, not scikit-image\'s form', (t) => {
  const truth = [1, 1, 1, 2, 2, 2], pred = [1, 1, 0, 2, 0, 0];
  const short = metrics.rand(Int32Array.from(pred), Int32Array.from(truth));
  const padded = metrics.rand(Int32Array.from([...pred, 5, 5, 5, 5]), Int32Array.from([...truth, 0, 0, 0, 0]));
  near(t, padded.skimage, short.skimage, 'skimage');
  near(t, padded.singletons, short.singletons, 'singletons');
  t.true(padded.snemi3d.adaptedRandError > short.snemi3d.adaptedRandError, 'sum(c) / n shrinks as n grows');
  // sum(c) = 3: n = 6 adds 0.5, n = 10 adds 0.3, to joint (1 + 4 = 5) and prediction (5).
  t.true(Math.abs(short.snemi3d.recall - 5.5 / 18) < 1e-12 && Math.abs(padded.snemi3d.recall - 5.3 / 18) < 1e-12);
});

test('no voxel of truth left: every form reports a perfect score (the challenge script would divide by 0)', (t) => {
  const r = metrics.rand(Int32Array.from([0, 1, 2]), new Int32Array(3));
  for (const form of forms) t.deepEqual({ ...r[form] }, { adaptedRandError: 0, precision: 1, recall: 1 }, form);
});

test('bad input to metrics.rand gets a coded error naming what was expected and received, and changes nothing', (t) => {
  const pred = Int32Array.from([1, 2, 0]), truth = Int32Array.from([1, 1, 2]);
  const before = [Array.from(pred), Array.from(truth)];
  const cases: Array<[() => unknown, string, RegExp]> = [
    [() => metrics.rand(pred, truth.subarray(0, 2)), 'ERR_SHAPE', /3 voxels, the truth 2/],
    [() => metrics.rand(Float32Array.from([1, 2.5, 0]), truth), 'ERR_ARGUMENT', /integer ids of 32 bits .* received 2\.5 at index 1; relabel/],
    [() => metrics.rand(pred, Float64Array.from([1, NaN, 2])), 'ERR_ARGUMENT', /in truth, received nan at index 1/],
    [() => metrics.rand(Uint32Array.from([1, 2 ** 31, 0]), truth), 'ERR_ARGUMENT', /received 2147483648 at index 1/],
    [() => metrics.rand(pred, Float64Array.from([1, 1, -(2 ** 31) - 1])), 'ERR_ARGUMENT', /received -2147483649 at index 2/],
    [() => metrics.rand(pred, truth, { adaptedRand: 'cremi' as AdaptedRandForm }), 'ERR_ARGUMENT', /'snemi3d', 'singletons', 'skimage', received the string 'cremi'/],
    [() => metrics.rand(pred, truth, { ignoreTruthZero: 1 as unknown as boolean }), 'ERR_ARGUMENT', /ignoreTruthZero/],
    [() => metrics.rand([1, 2, 3] as unknown as Int32Array, truth), 'ERR_ARGUMENT', /typed array/],
  ];
  for (const [call, code, message] of cases) t.throws(call, { code, message } as never);
  t.deepEqual([Array.from(pred), Array.from(truth)], before);
  // The extremes of 32 bits are ids like any other.
  const extremes = metrics.rand(Float64Array.from([2 ** 31 - 1, -(2 ** 31), 0]), Uint32Array.from([1, 2, 3]));
  t.true(Number.isFinite(extremes.adaptedRandError));
});
