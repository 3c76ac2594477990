// npm run bench -- blocks [--smoke]: out-of-core inference (issue 17), peak RSS while the
// Zarr volume grows 1x, 4x and 16x (each size in its own process), then blocks per second
// with 1 and 2 workers on a local Redis (when redis-server is installed), and each
// worker's peak RSS. `blocks --compare [--smoke]`: out-of-core against in-memory prediction of
// the same volume with overlapping windows (issue 26), alternated in one process.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argmaxClasses, layers, predictChunked, predictVolume, readChunkedPlan, readZarr, sequential, Tensor, windowStarts, writeZarr } from '../../lib';
import { loadModel } from '../../lib/models/load';
import { median, round, threads, type Suite } from '../common';
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

const compareWindow = [16, 128, 128] as const;

/** Window evaluations when every block computed every window touching it (before issue 26), overlap 0.5. */
function windowsTouchingEveryBlock(size: readonly number[], chunks: readonly number[]): number {
  return size.reduce((total, v, a) => {
    const starts = windowStarts(v, Math.min(compareWindow[a]!, v), 0.5);
    let n = 0;
    for (let c0 = 0; c0 < v; c0 += chunks[a]!) n += starts.filter((s) => s < c0 + chunks[a]! && s + compareWindow[a]! > c0).length;
    return total * n;
  }, 1);
}

/**
 * In memory (the Zarr volume read whole, predictVolume, class ids written as Zarr) against out
 * of core (predictChunked to Zarr class ids, statistics pass included), same windows (overlap
 * 0.5), alternated in this process, `repeats` times each: seconds and windows computed.
 */
async function compareCase(dir: string, size: number[], chunks: number[], repeats: number): Promise<void> {
  const model = loadModel(path.join(dir, 'model.safetensors'));
  const input = inputStore(dir, size);
  const seconds: Record<'memory' | 'blocks', number[]> = { memory: [], blocks: [] };
  const windows = { memory: 0, blocks: 0 };
  for (let r = 0; r < repeats; ++r) {
    for (const mode of r % 2 === 0 ? ['memory', 'blocks'] as const : ['blocks', 'memory'] as const) {
      const out = path.join(dir, `compare_${mode}_${r}.zarr`);
      const started = process.hrtime.bigint();
      if (mode === 'memory') {
        const volume = await readZarr(input);
        const x = Tensor.fromArray(volume.data, [1, 1, ...size]);
        const probs = await predictVolume(model, x, { window: compareWindow, onProgress: (_done, total) => (windows.memory = total) });
        x.dispose();
        const labels = argmaxClasses(probs.toArray(), 1, model.outChannels);
        probs.dispose();
        await writeZarr(out, labels, size, { chunks, dtype: 'uint8', compressor: 'zlib' });
      } else {
        windows.blocks = (await predictChunked(model, input, out, { window: compareWindow, chunks: chunks as [number, number, number] })).windows;
      }
      seconds[mode].push(Number(process.hrtime.bigint() - started) / 1e9);
      fs.rmSync(out, { recursive: true, force: true });
    }
  }
  console.log(JSON.stringify({ seconds, windows, windows_before: windowsTouchingEveryBlock(size, chunks) }));
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
      const size = value('--case', 2)!.split(',').map(Number);
      if (value('--case', 3) === 'compare') await compareCase(caseDir, size, value('--case', 4)!.split(',').map(Number), Number(value('--case', 5)));
      else await blocksCase(caseDir, size);
      return;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bench-blocks-'));
    try {
      const model = sequential([layers.conv({ out: 8, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.relu(),
        layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 1 });
      model.info = { normalize: 'slice' };
      model.save(path.join(dir, 'model.safetensors'));
      const writeInput = async (size: number[]) => {
        if (fs.existsSync(inputStore(dir, size))) return;
        const n = size.reduce((a, b) => a * b, 1);
        // The setup holds the input in this process; the measured prediction runs in its own.
        const data = new Float32Array(n);
        for (let i = 0; i < n; ++i) data[i] = Math.sin(i * 0.001) + ((i * 7919) % 13) / 13;
        await writeZarr(inputStore(dir, size), data, size, { chunks: [16, 128, 128] });
      };
      if (has('--compare')) {
        // Out of core against in memory, overlapping windows (issue 26): 128 MiB, two chunkings.
        const size = has('--smoke') ? [32, 256, 256] : [128, 512, 512];
        await writeInput(size);
        const repeats = has('--smoke') ? 1 : 2;
        for (const chunks of has('--smoke') ? [[16, 128, 128]] : [[16, 128, 128], [32, 256, 256]]) {
          const printed = runCaseInChild(`out-of-core vs in memory, ${size.join('x')}`, 'blocks', [dir, size.join(','), 'compare', chunks.join(','), String(repeats)]);
          if (printed === null) continue;
          const m = lastJsonLine<{ seconds: { memory: number[]; blocks: number[] }; windows: { memory: number; blocks: number }; windows_before: number }>(printed);
          const memory = median(m.seconds.memory), blocks = median(m.seconds.blocks);
          console.log(JSON.stringify({
            case: `${size.join('x')}, windows ${compareWindow.join('x')} at overlap 0.5, out-of-core chunks ${chunks.join('x')}`,
            in_memory_s: m.seconds.memory.map((v) => round(v, 1)), out_of_core_s: m.seconds.blocks.map((v) => round(v, 1)), ratio: round(blocks / memory, 3),
            windows_in_memory: m.windows.memory, windows_out_of_core: m.windows.blocks, windows_out_of_core_before: m.windows_before,
          }));
        }
        return;
      }
      // 1x, 4x and 16x: 32, 128 and 512 MiB of float32.
      const sizes = has('--smoke') ? [[16, 128, 128], [16, 256, 256]] : [[32, 512, 512], [128, 512, 512], [512, 512, 512]];
      for (const size of sizes) {
        const n = size.reduce((a, b) => a * b, 1);
        await writeInput(size);
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
