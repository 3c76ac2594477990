// The Promise forms run off the main thread: the event loop keeps ticking while
// a PyraMiD-LSTM layer computes, and a process that used them exits normally.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ops, Tensor } from '../lib';
import { optimized } from '../lib/testing';

function layerInputs() {
  const x = Tensor.full([1, 8, 8, 48, 48], 0.3);
  const weights = [0, 1, 2, 3, 4, 5].map(() => ({
    wx: Tensor.full([64, 8, 7, 7], 0.01), bx: Tensor.zeros([64]), wh: Tensor.full([64, 16, 7, 7], 0.01), bh: Tensor.zeros([64]),
  }));
  return { x, weights };
}

// How long the event loop waits is a timing (npm run bench -- eventloop measures it);
// what load cannot break is that timers fire at all while the native work runs.
test('timers fire while pyramidLstmAsync and its backward run off the main thread', async (t) => {
  const { x, weights } = layerInputs();
  let ticks = 0;
  const timer = setInterval(() => ++ticks, 1);
  const r = await ops.pyramidLstmAsync(x, weights);
  const duringForward = ticks;
  const g = await optimized.pyramidLstmBackwardAsync(r.saved, r.y);
  clearInterval(timer);
  t.deepEqual(g.dx.shape, [1, 8, 8, 48, 48]);
  t.true(duringForward > 0, 'no timer fired during the forward pass: the main thread was blocked');
  t.true(ticks > duringForward, 'no timer fired during the backward pass');
});

test('a process that used the Promise forms exits by itself', (t) => {
  const script = `
    const { ops, Tensor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const x = Tensor.full([1, 2, 3, 5, 5], 0.5);
    const w = { wx: Tensor.full([8, 2, 3, 3], 0.1), bx: Tensor.zeros([8]), wh: Tensor.full([8, 2, 3, 3], 0.1), bh: Tensor.zeros([8]) };
    ops.pyramidLstmAsync(x, [w, w, w, w, w, w]).then((r) => console.log('done', r.y.shape.join('x')));
  `;
  const r = spawnSync(process.execPath, ['--require=ts-node/register', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.is(r.signal, null, 'the process had to be killed: it did not exit');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /done 1x2x3x5x5/);
});

test('convAsync and convBackwardAsync give the synchronous results, and disposing inputs meanwhile is safe', async (t) => {
  const x = Tensor.full([1, 4, 6, 20, 20], 0.25);
  const w = Tensor.full([8, 4, 3, 3, 3], 0.05);
  const sync = ops.conv(x, w, { padding: 1 }).toArray();
  const pending = ops.convAsync(x, w, { padding: 1 });
  x.dispose();  // the work holds its own reference
  const y = await pending;
  t.deepEqual(y.toArray(), sync);
  const x2 = Tensor.full([1, 4, 6, 20, 20], 0.25);
  const g = await optimized.convBackwardAsync(x2, w, y, { padding: 1 });
  const gs = optimized.convBackward(x2, w, y, { padding: 1 });
  t.deepEqual(g.dw!.toArray(), gs.dw!.toArray());
  t.deepEqual(g.dx!.toArray(), gs.dx!.toArray());
  await t.throwsAsync(ops.convAsync(x2, Tensor.full([8, 3, 3, 3, 3], 0.1)), { message: /second axis = input channels/ });
});

// Both forms wait alike only if OpenMP waits passively (docs/benchmarks.md); a user's
// own choice wins, and children never inherit the policy segvol set for itself.
test('the addon loads with passive OpenMP waiting unless the user chose a policy, and leaves the environment as it was', (t) => {
  const script = `require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'core', 'native.ts'))});
    console.log('after load: ' + (process.env.OMP_WAIT_POLICY ?? 'unset'));`;
  const load = (policy: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_DISPLAY_ENV: 'verbose' };
    delete env.OMP_WAIT_POLICY;
    delete env.GOMP_SPINCOUNT;
    if (policy !== undefined) env.OMP_WAIT_POLICY = policy;
    return spawnSync(process.execPath, ['--require=ts-node/register/transpile-only', '-e', script], { encoding: 'utf8', env, timeout: 60_000 });
  };
  const unset = load(undefined);
  t.is(unset.status, 0, unset.stderr);
  // libgomp prints PASSIVE for an unset policy too; the spin count tells them apart (300000 when unset).
  t.regex(unset.stderr, /GOMP_SPINCOUNT = '0'/);
  t.regex(unset.stdout, /after load: unset/);
  const active = load('active');
  t.is(active.status, 0, active.stderr);
  t.regex(active.stderr, /OMP_WAIT_POLICY = 'ACTIVE'/);
  t.notRegex(active.stderr, /GOMP_SPINCOUNT = '0'/);
  t.regex(active.stdout, /after load: active/);
});
