// CUDA parity: every op case of test/cases.ts on cuda tensors against the CPU
// backend (tolerance: ten times the case's own, for cuDNN's other summation
// order). Without a usable CUDA backend these tests log why and pass;
// `npm run test:gpu` (SEGVOL_REQUIRE_CUDA=1) turns that into a failure.
import test from 'ava';
import { backends, ops } from '../lib';
import { opCases } from './cases';
import { compareDevices } from './harness';

const cuda = backends().find((b) => b.name === 'cuda')!;
const required = process.env.SEGVOL_REQUIRE_CUDA === '1';
// Op families without a CUDA kernel in this version: they must refuse clearly.
const missing = /maxPool|maxFilter|avgPool|upsample|batchNorm/;

test('the cuda backend reports its state', (t) => {
  if (cuda.available) {
    t.regex(cuda.detail, /MiB, cuDNN \d+/);
  } else {
    t.log(`cuda unavailable: ${cuda.reason}`);
    t.false(required, `SEGVOL_REQUIRE_CUDA=1 but cuda is unavailable: ${cuda.reason}`);
    t.regex(cuda.reason, /^(not compiled|no CUDA device|libcudnn|cuDNN lacks)/);
  }
});

for (const c of opCases) {
  test(`cuda vs cpu: ${c.name}`, (t) => {
    if (!cuda.available) {
      t.log(`skipped: cuda unavailable (${cuda.reason})`);
      t.false(required);
      return;
    }
    if (missing.test(c.name)) {
      const err = t.throws(() => compareDevices(t, c, ops)) as Error & { code?: string };
      t.is(err.code, 'ERR_DEVICE');
      t.regex(err.message, /has no CUDA kernel in this version/);
      return;
    }
    compareDevices(t, c, ops);
  });
}
