// npm run bench -- all [--repeats N] [--only id,id] [--out file.json] [--png file.png]:
// one table of the cases the other suites time one by one, each against its PyTorch peer:
// segvol's side in a fresh child process and the peer in its own Python process, so both
// peak RSS figures are the process's own. Layers and steps run the way user code does:
// the async ops and training steps are awaited. Default 3 timed runs per case (median,
// after the suites' own warm-ups): about 15-20 minutes on 2 cores.
//   --only ids     run these cases (ids below) and merge them into --out if it exists, so
//                  the table can be measured in pieces
//   --out file     the JSON written (default benchmarks/results/all-<date>.json)
//   --png file     the ratios as a bar chart
//   --from file    draw --png from a JSON written before (and print its Markdown table), without running anything
//   --precision bf16  segvol's convolutions in bf16 (setConvMath) against torch.autocast("cpu", bfloat16) on
//                  the training steps (default cases: the conv-heavy steps; out all-bf16-<date>.json)
//   --peer-allocator caching  run the PyTorch peer with jemalloc preloaded, purging off (see
//                  benchmarks/processes.ts: peerAllocator), instead of glibc's malloc (default 'glibc')
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { matchedSoftIoU, Optimizer, predictVolume, presets, SegvolError, Tensor, trainStep } from '../../lib';
import { drawRatioChart } from '../ratio_chart';
import { gflopPerRun, measureSteps, randomTensor, round, supervisedStep, threads, timeOnDevice, versus, type BenchArgs, type Suite } from '../common';
import { lastJsonLine, peerAllocator, repoRoot, runCaseInChild, runPeer, type PeerAllocator, type PeerTiming } from '../processes';
import { bratsRow } from './brats';
import { convnetRow } from './convnet';
import { cpuPyramidCases, timePyramid, type PyramidCase } from './pyramid';
import { rnnCases, timeRnn, type RnnCase } from './rnn';
import { paperStep } from './step';

/** One row of the table: the ratio is torch_ms / segvol_ms (above 1: segvol is faster). */
export interface AllRow {
  id: string;
  /** Short name for the chart. */
  label: string;
  case: string;
  segvol_ms: number | null;
  torch_ms: number | null;
  ratio: number | null;
  segvol_peak_rss_mib: number | null;
  torch_peak_rss_mib: number | null;
  /** Why a column is empty (no peer, a failed process), or what the row measures beyond time. */
  note?: string;
  [extra: string]: unknown;
}

/** One invocation that measured some of the rows (a table measured in pieces has several). */
export interface AllRun {
  command: string;
  date: string;
  commit: string;
  cases: string[];
  /** The machine's 1-minute load average at the start and the end: other work competes for the cores. */
  load: [number, number];
}

export interface AllResults {
  /** The latest run's date and commit; runs lists every piece. */
  date: string;
  /** The convolution math of both sides (bf16: segvol's bf16 convolutions against PyTorch's autocast). */
  precision?: 'fp32' | 'bf16';
  /** The C allocator of the PyTorch peer (absent: glibc, the default). */
  peerAllocator?: PeerAllocator;
  commit: string;
  runs: AllRun[];
  machine: { threads: number; cpu: string; cores: number; node: string; torch: string | null };
  repeats: number;
  rows: AllRow[];
}

/** What a child process measured: its median and its own peak RSS (plus case-specific columns). */
interface ChildMeasurement {
  segvol_ms: number;
  peak_rss_mib: number;
  [extra: string]: unknown;
}

const peakRssMib = () => process.resourceUsage().maxRSS / 1024;

/** The paper network (C-LSTMs of 16, 32, 64 units, 7x7; FC 25, 45) as the peer builds it. */
const paperNet = { hidden: [16, 32, 64], fc: [25, 45], kernel: 7 };
const paperStepSize = [8, 64, 64];
const predictSize = [8, 64, 64] as const;
const consistentWindow = [3, 128, 128] as const;
const consistentObjects = 4;

/** segvol's side of a case, run in the child process (`all --case <id>`); prints one JSON line. */
async function childCase(id: string, repeats: number): Promise<void> {
  const pyramidCase = cpuPyramidCases.find((c) => pyramidId(c) === id);
  const rnnCase = rnnCases.find((c) => c.kind === id);
  let out: ChildMeasurement;
  // A timing with one repeat runs the work 3 times (its 2 warm-ups too): one run's GFLOP is a third.
  const gflopOfTiming = (time: (repeats: number) => Promise<number>) => gflopPerRun(() => time(1), 3);
  if (pyramidCase) {
    out = { segvol_ms: await timePyramid(pyramidCase, repeats), peak_rss_mib: peakRssMib() };
    out.gflop = await gflopOfTiming((n) => timePyramid(pyramidCase, n));
  } else if (rnnCase) {
    out = { segvol_ms: await timeRnn(rnnCase, repeats), peak_rss_mib: peakRssMib() };
    out.gflop = await gflopOfTiming((n) => timeRnn(rnnCase, n));
  } else if (id === 'paper-step') {
    // The step the Trainer runs (trainStep: forward in training mode, squared error, backward, RMSprop with momentum).
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, ...paperNet, seed: 1 });
    const optimizer = new Optimizer({ kind: 'rmspropMomentum' });
    const x = randomTensor([1, 1, ...paperStepSize]);
    const labels = Tensor.fromArray(Float32Array.from({ length: x.size }, () => (Math.random() < 0.3 ? 1 : 0)), [1, ...paperStepSize]);
    const m = await measureSteps(() => supervisedStep(model, optimizer, x, labels, { ...paperStep, checkFinite: false }), repeats);
    out = { segvol_ms: m.segvol_ms, peak_rss_mib: m.peak_rss_mib, segvol_tensor_peak_mib: Math.round(m.tensor_peak_mib), gflop: m.gflop };
  } else if (id === 'predict') {
    // predictVolume over one window the size of the volume: the peer runs the network once on the same volume.
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, ...paperNet, seed: 1 });
    const volume = randomTensor([1, 1, ...predictSize]);
    const predict = (n: number) => timeOnDevice(async () => {
      const probs = await predictVolume(model, volume, { window: predictSize });
      return () => probs.dispose();
    }, n);
    out = { segvol_ms: await predict(repeats), peak_rss_mib: peakRssMib() };
    out.gflop = await gflopOfTiming(predict);
  } else if (id === 'consistent') {
    // Gonda et al.'s network at its defaults (ResNet-50 encoder, CConvLSTMs of 64, 64, 32, 32, 16):
    // forward in training mode, matched soft IoU, backward, Adam at the paper's 1e-6.
    const model = presets.consistentConvLstm({ seed: 1 });
    const optimizer = new Optimizer({ kind: 'adam', lr: 1e-6 });
    const [t, h, w] = consistentWindow;
    const frames = Tensor.fromArray(Float32Array.from({ length: t * h * w }, (_, i) => Math.sin(i * 0.01)), [1, 1, t, h, w]);
    // masks (objects, 1, T, H, W): four stripes of the frame, one per object.
    const maskData = Float32Array.from({ length: consistentObjects * t * h * w }, (_, i) => (Math.floor((i % (h * w)) / w / (h / consistentObjects)) === Math.floor(i / (t * h * w)) ? 1 : 0));
    const masks = Tensor.fromArray(maskData, [consistentObjects, 1, t, h, w]);
    const m = await measureSteps(() => trainStep(model, optimizer, async () => {
      const probs = await model.forward({ frames, masks }, { training: true });
      const loss = matchedSoftIoU(probs, { data: maskData, count: consistentObjects }).loss;
      probs.dispose();
      return loss;
    }, { lr: 1e-6, checkFinite: false }), repeats);
    const parameters = [...model.namedParameters().values()].reduce((n, t) => n + t.size, 0);
    out = { segvol_ms: m.segvol_ms, peak_rss_mib: m.peak_rss_mib, segvol_tensor_peak_mib: Math.round(m.tensor_peak_mib), gflop: m.gflop, segvol_parameters: parameters };
  } else {
    throw new SegvolError('ERR_ARGUMENT', `bench all --case: expected one of ${allCaseIds.join(', ')}; received '${id}'`);
  }
  console.log(JSON.stringify(out));
}

function pyramidId(c: PyramidCase): string {
  return `pyramid-c${c.x[1]}`;
}

/** A row from a child's measurement and the peer's (either may be missing). */
function rowOf(id: string, label: string, name: string, segvol: ChildMeasurement | null, peer: PeerTiming | null, note?: string): AllRow {
  const times = segvol ? versus(segvol.segvol_ms, peer?.torch_ms, 1) : { segvol_ms: null, torch_ms: peer ? round(peer.torch_ms, 1) : null, ratio: null };
  const { segvol_ms: _ms, peak_rss_mib: _rss, ...extra } = segvol ?? { segvol_ms: 0, peak_rss_mib: 0 };
  return withRates({
    id, label, case: name, segvol_ms: times.segvol_ms ?? null, torch_ms: times.torch_ms ?? null, ratio: times.ratio ?? null,
    segvol_peak_rss_mib: segvol ? Math.round(segvol.peak_rss_mib) : null,
    torch_peak_rss_mib: peer?.peak_rss_mib === undefined ? null : Math.round(peer.peak_rss_mib),
    ...extra, ...(note ? { note } : {}),
  });
}

function child(id: string, repeats: number): ChildMeasurement | null {
  const printed = runCaseInChild(id, 'all', [id, '--repeats', String(repeats)]);
  return printed === null ? null : lastJsonLine<ChildMeasurement>(printed);
}

/** A row measured by the other suites' row functions (convnet, brats): their columns renamed to the table's. */
function fromSuiteRow(id: string, label: string, row: Record<string, unknown> | null): AllRow {
  if (row === null) return rowOf(id, label, id, null, null, 'the segvol process failed (its error is printed above)');
  const { case: name, segvol_ms, torch_ms, ratio, segvol_peak_rss_mib, torch_peak_rss_mib, target_ratio: _target, ...extra } = row as Record<string, number | null> & { case: string };
  return withRates({
    id, label, case: name, segvol_ms: segvol_ms ?? null, torch_ms: torch_ms ?? null, ratio: ratio ?? null,
    segvol_peak_rss_mib: segvol_peak_rss_mib ?? null, torch_peak_rss_mib: torch_peak_rss_mib ?? null, ...extra,
  });
}

/**
 * Each side's GFLOP/s from the case's GFLOP per run (segvol's count; the peers compute the
 * same convolutions and products, so one count serves both): how close each side runs to the
 * machine's peak, and so whether a ratio target is reachable at all (docs/benchmarks.md).
 */
function withRates(row: AllRow): AllRow {
  const gflop = typeof row.gflop === 'number' && row.gflop > 0 ? row.gflop : null;
  if (gflop === null) return row;
  const rate = (ms: number | null) => (ms ? round((gflop * 1000) / ms, 1) : null);
  return { ...row, gflop: round(gflop, 2), segvol_gflops: rate(row.segvol_ms), torch_gflops: rate(row.torch_ms) };
}

interface TableCase {
  id: string;
  run(repeats: number): AllRow;
}

const tableCases: TableCase[] = [
  ...cpuPyramidCases.map((c): TableCase => ({
    id: pyramidId(c),
    run: (repeats) => rowOf(pyramidId(c), `PyraMiD layer C=${c.x[1]}`, `${c.name}, forward + backward`, child(pyramidId(c), repeats),
      runPeer({ suite: 'pyramid', repeats, cases: [c] })(c.name)),
  })),
  {
    id: 'paper-step',
    run: (repeats) => {
      const name = `PyraMiD paper network training step on ${paperStepSize.join('x')}, RMSprop`;
      const peer = runPeer({ suite: 'gpu', device: 'cpu', tf32: false, repeats, cases: [{ kind: 'train', name, ...paperNet, size: paperStepSize }] })(name);
      return rowOf('paper-step', 'PyraMiD net step', name, child('paper-step', repeats), peer);
    },
  },
  ...rnnCases.map((c: RnnCase): TableCase => ({
    id: c.kind,
    run: (repeats) => rowOf(c.kind, { lstm: 'LSTM', gru: 'GRU', convLstm: 'ConvLSTM' }[c.kind], `${c.name}, forward + backward`, child(c.kind, repeats),
      runPeer({ suite: 'rnn', repeats, cases: [c] })(c.name)),
  })),
  { id: 'n4', run: (repeats) => fromSuiteRow('n4', 'N4 step', convnetRow('n4', repeats, false)) },
  { id: 'vd2d3d', run: (repeats) => fromSuiteRow('vd2d3d', 'VD2D3D step', convnetRow('vd2d3d', repeats, false)) },
  { id: 'brats', run: (repeats) => fromSuiteRow('brats', 'MRI step', bratsRow(repeats, false, 64)) },
  {
    id: 'consistent',
    run: (repeats) => {
      const name = `consistent ConvLSTM training step (ResNet-50 encoder), ${consistentWindow.join('x')} frames, ${consistentObjects} objects, Adam`;
      // The peer builds the same network (benchmarks/peer_torch.py, ConsistentConvLstmNet) and the same inputs, loss and optimizer.
      const peer = runPeer({
        suite: 'consistent', repeats,
        cases: [{ name, window: consistentWindow, objects: consistentObjects, inChannels: 1, hidden: [64, 64, 32, 32, 16], kernel: 3, lr: 1e-6 }],
      })(name) as (PeerTiming & { torch_parameters?: number }) | null;
      const row = rowOf('consistent', 'consistent step', name, child('consistent', repeats), peer);
      if (peer?.torch_parameters !== undefined) row.torch_parameters = peer.torch_parameters;
      if (row.segvol_parameters !== undefined && peer?.torch_parameters !== undefined && row.segvol_parameters !== peer.torch_parameters) {
        row.note = `the networks differ: segvol has ${String(row.segvol_parameters)} parameters, the PyTorch peer ${peer.torch_parameters}`;
      }
      return row;
    },
  },
  {
    id: 'predict',
    run: (repeats) => {
      const name = `predictVolume, PyraMiD paper network, ${predictSize.join('x')} in one window`;
      const peer = runPeer({ suite: 'gpu', device: 'cpu', tf32: false, repeats, cases: [{ kind: 'inference', name, ...paperNet, size: predictSize }] })(name);
      const row = rowOf('predict', 'predictVolume', name, child('predict', repeats), peer);
      const voxels = predictSize.reduce((a, b) => a * b, 1);
      if (row.segvol_ms) row.segvol_voxels_per_s = Math.round((voxels * 1000) / row.segvol_ms);
      if (row.torch_ms) row.torch_voxels_per_s = Math.round((voxels * 1000) / row.torch_ms);
      return row;
    },
  },
];

export const allCaseIds = tableCases.map((c) => c.id);
/** The training steps dominated by convolutions: what --precision bf16 measures by default. */
export const bf16CaseIds = ['paper-step', 'n4', 'vd2d3d', 'brats'];

function commitOf(root: string): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim() || 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).stdout.trim() !== '';
  return dirty ? `${head} (with uncommitted changes)` : head;
}

function torchVersion(): string | null {
  const r = spawnSync(process.env.PYTHON ?? 'python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function writePng(results: AllResults, file: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const peer = results.peerAllocator === 'caching' ? 'PyTorch + jemalloc' : 'PyTorch';
  fs.writeFileSync(file, drawRatioChart(results.rows, `segvol vs ${peer} (CPU, ${results.precision === 'bf16' ? 'bf16, ' : ''}${results.machine.threads} thread${results.machine.threads === 1 ? '' : 's'} each), ${results.date}, ${results.commit.split(' ')[0]}`));
  console.error(`chart written to ${file}`);
}

/** The rows as a Markdown table (docs/benchmarks.md): ms, ratio, peak RSS of each side. */
export function markdownTable(rows: readonly AllRow[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'number' ? v.toLocaleString('en-US') : String(v));
  return [
    '| case | segvol ms | torch ms | ratio | peak RSS MiB (segvol / torch) | GFLOP per run | GFLOP/s (segvol / torch) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.case} | ${cell(r.segvol_ms)} | ${cell(r.torch_ms)} | ${cell(r.ratio)} | ${cell(r.segvol_peak_rss_mib)} / ${cell(r.torch_peak_rss_mib)} | ${cell(r.gflop)} | ${cell(r.segvol_gflops)} / ${cell(r.torch_gflops)} |`),
  ].join('\n');
}

async function runAll(args: BenchArgs): Promise<void> {
  const from = args.value('--from');
  const png = args.value('--png');
  if (from !== undefined) {
    if (png === undefined) throw new SegvolError('ERR_ARGUMENT', 'bench all: --from <file.json> only draws a chart, so it needs --png <file.png>; received no --png');
    const results = JSON.parse(fs.readFileSync(from, 'utf8')) as AllResults;
    writePng(results, png);
    console.log(markdownTable(results.rows));
    return;
  }
  const repeats = args.repeats;
  const precision = args.value('--precision') ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new SegvolError('ERR_ARGUMENT', `bench all --precision: expected fp32 or bf16; received '${precision}'`);
  // The children and the peer read it from the environment (benchmarks/run.ts, peer_torch.py).
  process.env.SEGVOL_BENCH_PRECISION = precision;
  process.env.SEGVOL_BENCH_PEER_ALLOCATOR = args.value('--peer-allocator') ?? 'glibc';
  const allocator = peerAllocator();
  const only = (args.value('--only') ?? (precision === 'bf16' ? bf16CaseIds.join(',') : undefined))?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = (only ?? []).filter((id) => !allCaseIds.includes(id));
  if (unknown.length > 0) throw new SegvolError('ERR_ARGUMENT', `bench all --only: expected case ids among ${allCaseIds.join(', ')}; received ${unknown.join(', ')}`);
  const date = new Date().toISOString().slice(0, 10);
  const out = args.value('--out') ?? path.join(repoRoot, 'benchmarks', 'results', `all-${precision === 'bf16' ? 'bf16-' : ''}${date}.json`);
  // Rows measured before (an earlier --only piece) stay unless measured again now.
  const before = only && fs.existsSync(out) ? (JSON.parse(fs.readFileSync(out, 'utf8')) as AllResults) : undefined;
  const previous = before?.rows ?? [];
  const commit = commitOf(repoRoot);
  const ids = only ?? allCaseIds;
  if (before && (before.precision ?? 'fp32') !== precision) {
    throw new SegvolError('ERR_ARGUMENT', `bench all: ${out} holds ${before.precision ?? 'fp32'} rows and this run is ${precision}; give another --out`);
  }
  if (before && (before.peerAllocator ?? 'glibc') !== allocator) {
    throw new SegvolError('ERR_ARGUMENT', `bench all: ${out} holds rows whose peer ran with ${before.peerAllocator ?? 'glibc'} and this run's peer uses ${allocator}; give another --out`);
  }
  const results: AllResults = {
    date, commit, precision, peerAllocator: allocator,
    runs: [...(before?.runs ?? []), { command: `npm run bench -- all ${process.argv.slice(3).join(' ')}`.trim(), date, commit, cases: ids, load: [round(os.loadavg()[0]!, 1), 0] }],
    machine: { threads, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, torch: torchVersion() },
    repeats, rows: [],
  };
  const fresh = new Map<string, AllRow>();
  for (const c of tableCases) {
    if (only && !only.includes(c.id)) continue;
    const started = Date.now();
    const row = c.run(repeats);
    fresh.set(c.id, row);
    console.log(JSON.stringify(row));
    console.error(`${c.id}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  results.runs[results.runs.length - 1]!.load[1] = round(os.loadavg()[0]!, 1);
  results.rows = allCaseIds.map((id) => fresh.get(id) ?? previous.find((r) => r.id === id)).filter((r): r is AllRow => r !== undefined);
  if (before && before.repeats !== repeats) console.error(`note: ${out} had rows of ${before.repeats} repeats; these have ${repeats}`);
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(results, null, 1)}\n`);
  console.error(`results written to ${out}`);
  if (png !== undefined) writePng(results, png);
}

export const all: Suite = {
  name: 'all',
  defaultRepeats: 3,
  run: (args) => {
    const one = args.value('--case');
    return one !== undefined ? childCase(one, args.repeats) : runAll(args);
  },
};
