import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backends, ops, SegvolError, Tensor } from '../lib';
import { primitiveCacheStats } from '../lib/testing';

test('fromArray / toArray round-trip values and shape', (t) => {
  const data = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
  const x = Tensor.fromArray(data, [2, 3, 4]);
  t.deepEqual(x.shape, [2, 3, 4]);
  t.is(x.rank, 3);
  t.is(x.size, 24);
  t.is(x.device, 'cpu');
  t.deepEqual(x.toArray(), data);
  // toArray copies: changing the copy leaves the tensor alone
  const copy = x.toArray();
  copy[0] = 99;
  t.is(x.toArray()[0], -3);
  x.dispose();
});

test('fromArray accepts plain arrays, and zeros/full fill', (t) => {
  t.deepEqual(Array.from(Tensor.fromArray([1, 2, 3], [3]).toArray()), [1, 2, 3]);
  t.deepEqual(Array.from(Tensor.full([2, 2], 1.5).toArray()), [1.5, 1.5, 1.5, 1.5]);
  t.deepEqual(Array.from(Tensor.zeros([3]).toArray()), [0, 0, 0]);
});

test('reshape shares memory; a view outlives the disposed original', (t) => {
  const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
  const v = x.reshape([6]);
  t.deepEqual(v.shape, [6]);
  x.dispose();
  t.true(x.disposed);
  t.false(v.disposed);
  t.deepEqual(Array.from(v.toArray()), [1, 2, 3, 4, 5, 6]);
  const err = t.throws(() => x.reshape([3, 2]), { instanceOf: SegvolError });
  t.is((err as SegvolError).code, 'ERR_DISPOSED');
  t.throws(() => v.reshape([4]), { message: /expected a shape with 6 elements/ });
});

test('a disposed tensor throws ERR_DISPOSED everywhere, and dispose is idempotent', (t) => {
  const x = Tensor.fromArray([1, 2, 3, 4], [1, 1, 2, 2]);
  x.dispose();
  x.dispose();
  t.true(x.disposed);
  t.regex(String(x), /disposed/);
  for (const use of [() => x.toArray(), () => ops.tanh(x), () => ops.add(x, x), () => x.to('cpu'),
    () => ops.conv(x, x), () => ops.sum([x])]) {
    const err = t.throws(use) as Error & { code?: string };
    t.is(err.code, 'ERR_DISPOSED', err.message);
    t.regex(err.message, /disposed/);
  }
});

test('finalizers free forgotten tensors without crashing (GC safety net)', async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    t.log('skipped: run node with --expose-gc (the ava config does) to exercise finalizers');
    t.pass();
    return;
  }
  const before = process.memoryUsage().rss;
  for (let round = 0; round < 20; ++round) {
    for (let i = 0; i < 20; ++i) Tensor.zeros([1, 1, 256, 256, 4]);  // 1 MiB each, never disposed
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  const grownMiB = (process.memoryUsage().rss - before) / (1 << 20);
  // 400 MiB were allocated in total; without finalizers RSS would grow by about that.
  t.true(grownMiB < 200, `RSS grew by ${grownMiB.toFixed(0)} MiB`);
});

// V8 is told of tensors' host memory with hysteresis (native/binding/external_memory.h),
// so churn does not start a collection each time; a program that forgets to dispose
// must still be collected without anyone calling gc(). A child without --expose-gc
// leaks 3.2 GiB in 16 MiB tensors and must stay far below that.
test('forgotten tensors are collected without gc(): V8 still hears of their growth', (t) => {
  const script = `
    const { Tensor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    (async () => {
      for (let i = 0; i < 200; ++i) {
        Tensor.zeros([4, 1024, 1024]);  // 16 MiB, never disposed
        if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
      }
      console.log(JSON.stringify({ peakMiB: process.resourceUsage().maxRSS / 1024 }));
    })();`;
  const r = spawnSync(process.execPath, ['--require=ts-node/register', '-e', script], { encoding: 'utf8', cwd: path.join(__dirname, '..'), timeout: 120_000 });
  t.is(r.status, 0, r.stderr);
  const { peakMiB } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { peakMiB: number };
  t.true(peakMiB < 1500, `peak RSS ${peakMiB.toFixed(0)} MiB after leaking 3200 MiB of tensors`);
});

test('toArray(into) fills and returns the given array; a wrong one is refused', (t) => {
  const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
  const into = new Float32Array(6);
  t.is(x.toArray(into), into);
  t.deepEqual(Array.from(into), [1, 2, 3, 4, 5, 6]);
  const view = new Float32Array(10).subarray(2, 8);
  x.toArray(view);
  t.deepEqual(Array.from(view), [1, 2, 3, 4, 5, 6]);
  const short = t.throws(() => x.toArray(new Float32Array(5))) as Error & { code?: string };
  t.is(short.code, 'ERR_SHAPE');
  t.regex(short.message, /expected `into` to hold 6 values .*received 5/);
  const wrong = t.throws(() => x.toArray(new Float64Array(6) as unknown as Float32Array)) as Error & { code?: string };
  t.is(wrong.code, 'ERR_ARGUMENT');
  t.regex(wrong.message, /Float32Array/);
  x.dispose();
});

test('to("cpu") copies; to("cuda") reports why it is unavailable', (t) => {
  const x = Tensor.fromArray([1, 2], [2]);
  const y = x.to('cpu');
  x.dispose();
  t.deepEqual(Array.from(y.toArray()), [1, 2]);
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (!cuda.available) {
    const err = t.throws(() => y.to('cuda')) as Error & { code?: string };
    t.is(err.code, 'ERR_DEVICE');
    t.regex(err.message, /cuda backend unavailable/);
  } else {
    t.log('cuda is available in this build: checked by the CUDA tests');
  }
});

test('backends() lists cpu (available) and cuda with a reason when unavailable', (t) => {
  const list = backends();
  t.deepEqual(list.map((b) => b.name), ['cpu', 'cuda']);
  const cpu = list[0]!;
  t.true(cpu.available);
  t.regex(cpu.detail, /oneDNN \d+\.\d+/);
  const cuda = list[1]!;
  if (!cuda.available) t.regex(cuda.reason, /^(not compiled|no CUDA device)/);
});

test('oneDNN primitives are cached by shape: a repeated convolution builds nothing new', (t) => {
  // 32 x 3 x 3 = 288 taps: a oneDNN convolution (up to 256 taps run as im2col + GEMM).
  const x = Tensor.full([1, 32, 13, 11], 0.5);
  const w = Tensor.full([2, 32, 3, 3], 0.1);
  ops.conv(x, w, { padding: 1 }).dispose();
  const afterFirst = primitiveCacheStats();
  for (let i = 0; i < 3; ++i) ops.conv(x, w, { padding: 1 }).dispose();
  const afterRepeat = primitiveCacheStats();
  t.is(afterRepeat.misses, afterFirst.misses);
  t.is(afterRepeat.hits, afterFirst.hits + 3);
  ops.conv(x, w, { padding: 0 }).dispose();  // a new geometry is a new primitive
  t.is(primitiveCacheStats().misses, afterFirst.misses + 1);
});
