// npm run bench -- blocks [--smoke]: out-of-core inference (issue 17), peak RSS while the
// Zarr volume grows 1x, 4x and 16x (each size in its own process), then blocks per second
// with 1 and 2 workers on a local Redis (when redis-server is installed), and each
// worker's peak RSS.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { layers, predictChunked, readChunkedPlan, sequential, writeZarr } from '../../lib';
import { loadModel } from '../../lib/models/load';
import { round, threads, type Suite } from '../common';
import { lastJsonLine, repoRoot, runCaseInChild } from '../processes';

const cli = path.join(repoRoot, 'lib', 'cli', 'main.ts');
const inputStore = (dir: string, size: number[]) => path.join(dir, `in_${size.join('x')}.zarr`);

/** One out-of-core prediction of the Zarr volume of `size` in this process: time and peak RSS. */
async function blocksCase(dir: string, size: number[]): Promise<void> {
  const model = loadModel(path.join(dir, 'model.safetensors'));
  const started = process.hrtime.bigint();
  // Windows that tile the volume (overlap 0): the memory question, not the blending's cost.
  const r = await predictChunked(model, inputStore(dir, size), path.join(dir, `out_${size.join('x')}_${process.pid}.zarr`),
    { window: [16, 128, 128], chunks: [16, 128, 128], overlap: 0 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ seconds, blocks: r.blocks, peak_rss_mib: process.resourceUsage().maxRSS / 1024 }));
}

/** Blocks per second of `segvol predict --queue` served by 1, then 2 `segvol worker` processes. */
async function queuedWorkers(dir: string, size: number[]): Promise<void> {
  const port = 6300 + (process.pid % 600);
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const url = `redis://127.0.0.1:${port}`;
  try {
    for (const count of [1, 2]) {
      const name = `bench${count}`;
      const out = path.join(dir, `queue_${count}.zarr`);
      const workerThreads = Math.max(1, Math.floor(threads / count));
      const workers = Array.from({ length: count }, () => spawn(process.execPath, ['-r', 'ts-node/register', cli, 'worker', '--queue', url, '--queue-name', name],
        { cwd: repoRoot, env: { ...process.env, OMP_NUM_THREADS: String(workerThreads) }, stdio: ['ignore', 'pipe', 'pipe'] }));
      const logs = workers.map((w) => new Promise<string>((resolve) => {
        let text = '';
        w.stdout!.on('data', (d) => (text += String(d)));
        w.on('exit', () => resolve(text));
      }));
      await new Promise((r) => setTimeout(r, 4000));  // the workers load
      const started = Date.now();
      const c = spawnSync(process.execPath, ['-r', 'ts-node/register', cli, 'predict', '--model', path.join(dir, 'model.safetensors'), '--in', inputStore(dir, size),
        '--out', out, '--window', '16,64,64', '--chunks', '16,128,128', '--queue', url, '--queue-name', name], { cwd: repoRoot, encoding: 'utf8' });
      const seconds = (Date.now() - started) / 1000;
      for (const w of workers) w.kill('SIGTERM');
      const rss = (await Promise.all(logs)).map((text) => Number(/peak RSS (\d+) MiB/.exec(text)?.[1] ?? NaN));
      const blocks = c.status === 0 ? readChunkedPlan(out).blocks : NaN;
      console.log(JSON.stringify({
        case: `${count} worker${count > 1 ? 's' : ''} (${workerThreads} thread${threads / count > 1 ? 's' : ''} each), ${size.join('x')}`,
        ok: c.status === 0, seconds: round(seconds, 1), blocks_per_s: round(blocks / seconds, 2), peak_rss_mib_per_worker: rss,
      }));
    }
  } finally {
    redis.kill('SIGTERM');
  }
}

export const blocks: Suite = {
  name: 'blocks',
  async run({ has, value }) {
    const caseDir = value('--case');
    if (caseDir !== undefined) {
      await blocksCase(caseDir, value('--case', 2)!.split(',').map(Number));
      return;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bench-blocks-'));
    try {
      const model = sequential([layers.conv({ out: 8, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.relu(),
        layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 1 });
      model.info = { normalize: 'slice' };
      model.save(path.join(dir, 'model.safetensors'));
      // 1x, 4x and 16x: 32, 128 and 512 MiB of float32.
      const sizes = has('--smoke') ? [[16, 128, 128], [16, 256, 256]] : [[32, 512, 512], [128, 512, 512], [512, 512, 512]];
      for (const size of sizes) {
        const n = size.reduce((a, b) => a * b, 1);
        // The setup holds the input in this process; the measured prediction runs in its own.
        const data = new Float32Array(n);
        for (let i = 0; i < n; ++i) data[i] = Math.sin(i * 0.001) + ((i * 7919) % 13) / 13;
        await writeZarr(inputStore(dir, size), data, size, { chunks: [16, 128, 128] });
        const printed = runCaseInChild(`out-of-core ${size.join('x')}`, 'blocks', [dir, size.join(',')]);
        if (printed === null) continue;
        const m = lastJsonLine<{ seconds: number; blocks: number; peak_rss_mib: number }>(printed);
        console.log(JSON.stringify({
          case: `out-of-core prediction, ${size.join('x')} (${(n * 4 / 2 ** 20).toFixed(0)} MiB float32), blocks and windows of 16x128x128`,
          seconds: round(m.seconds, 1), blocks: m.blocks, voxels_per_s: Math.round(n / m.seconds), peak_rss_mib: Math.round(m.peak_rss_mib),
        }));
      }
      if (spawnSync('redis-server', ['--version']).status !== 0) {
        console.log(JSON.stringify({ case: 'workers', skipped: 'redis-server is not installed (apt-get install redis-server)' }));
        return;
      }
      await queuedWorkers(dir, sizes[0]!);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
