// Lee et al. (2015)'s training protocol from one config: several training stacks, the
// recursive stage with an added stack while the first network trains on, the final
// boundary maps from the first network's final weights, ZNN's right-angle
// augmentation and per-patch class rebalancing, and the coded refusals.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Random, Tensor, VolumeSampler, MultiSampler, readSafetensors } from '../lib';
import { ops } from '../lib/ops';
import { parseTrainConfig, loadTrainingData, type TrainConfig } from '../lib/cli/config';
import { trainFromConfig } from '../lib/cli/train_run';
import { syntheticEm } from '../lib/data/synthetic';
import { preprocessVolume } from '../lib/data/preprocess';
import { readNpy, writeNpy } from '../lib/io/npy';
import { loadModel } from '../lib/models/load';
import { families } from '../lib/models';
import { lee2015Schedule, znnTrainingSettings } from '../lib/models/convnets/settings';
import { recursiveBoundaryMap } from '../lib/models/convnets/recursive';
import { Batch } from '../lib/training/batch';
import { PhaseLoss } from '../lib/training/phase_loss';
import { classWeightsFromCounts } from '../lib/training/losses';
import type { CliContext } from '../lib/models/family';

/** A CliContext that keeps what it prints. */
function quietCli(): CliContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    progress: () => ({ update: () => undefined, done: () => undefined }),
    print: (line) => lines.push(line),
    note: (line) => lines.push(line),
    duration: (s) => `${s.toFixed(0)} s`,
  };
}

/** Writes synthetic EM stacks s<i>.npy / l<i>.npy (image, membrane labels) into dir. */
function writeStacks(dir: string, count: number, dims: [number, number, number]): void {
  for (let i = 1; i <= count; ++i) {
    const em = syntheticEm({ depth: dims[0], height: dims[1], width: dims[2], seed: 10 + i });
    writeNpy(path.join(dir, `s${i}.npy`), { shape: em.shape, data: em.image });
    writeNpy(path.join(dir, `l${i}.npy`), { shape: em.shape, data: em.labels });
  }
}

const stack = (i: number) => ({ volume: `s${i}.npy`, labels: `l${i}.npy` });

test('recursive training from one config: VD2D on stacks 2 and 3, VD2D3D with stack 4 added while VD2D trains on, scored on stack 1 with the final VD2D\'s maps', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-protocol-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dims: [number, number, number] = [5, 112, 112];
  writeStacks(dir, 4, dims);
  const config = parseTrainConfig(JSON.stringify({
    model: { preset: 'vd2d3d', recursive: true, seed: 2 },
    data: { stacks: [stack(2), stack(3)] },
    settings: 'paper', outputSize: [1, 2, 2], steps: 4, checkpoint: { path: 'vd2d3d.safetensors' },
    recursive: {
      first: { model: { preset: 'vd2d', seed: 1 }, settings: 'paper', outputSize: [1, 2, 2], steps: 3, optimizer: { kind: 'sgd', lr: 0.001, momentum: 0.9 }, checkpoint: { path: 'vd2d.safetensors' } },
      stacks: [stack(4)],
      continueFirst: { steps: 2 },
      window: [5, 56, 56],
    },
    evaluation: { stacks: [stack(1)], window: [1, 56, 56], out: 'eval' },
  }), 'protocol.json');
  const cli = quietCli();
  const model = await trainFromConfig(config, dir, { device: 'cpu', signal: new AbortController().signal }, cli);
  const out = cli.lines.join('\n');
  t.regex(out, /recursive training: stage 1 of 2, vd2d/);
  t.regex(out, /the first network trains on for 2 updates while vd2d3d trains/);
  t.regex(out, /the first network: 2 more updates \(5 in all\)/);
  t.regex(out, /evaluation stack 0 \(s1\.npy\): pixel error 0\.\d+ over 62,720 voxels/);
  t.deepEqual(Object.keys(model.inputs), ['image', 'boundary']);

  // Stage 1 ran 3 updates; the continued training 2 more, on the same trainer (its checkpoint says 5).
  const position = (file: string) => (JSON.parse(readSafetensors(path.join(dir, file)).metadata.segvol!) as { position: { step: number } }).position.step;
  t.is(position('vd2d.safetensors'), 5);
  t.is(position('vd2d3d.safetensors'), 4);
  const stepsOf = (file: string) => fs.readFileSync(path.join(dir, file), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { step?: number; loss?: number; time: string }).filter((l) => l.loss !== undefined);
  const vd2dSteps = stepsOf('vd2d.log.jsonl'), vd2d3dSteps = stepsOf('vd2d3d.log.jsonl');
  t.deepEqual(vd2dSteps.map((l) => l.step), [1, 2, 3, 4, 5]);
  t.deepEqual(vd2d3dSteps.map((l) => l.step), [1, 2, 3, 4]);
  // Spread evenly: VD2D's 4th update comes after VD2D3D's 2nd and before its 3rd; its 5th after the 4th (the log's times order them).
  t.true(vd2dSteps[3]!.time >= vd2d3dSteps[1]!.time && vd2dSteps[3]!.time <= vd2d3dSteps[2]!.time, JSON.stringify([vd2dSteps[3], vd2d3dSteps]));
  t.true(vd2dSteps[4]!.time >= vd2d3dSteps[3]!.time);
  const stage1 = loadModel(path.join(dir, 'vd2d.stage1.safetensors'));
  const final = loadModel(path.join(dir, 'vd2d.safetensors'));
  const changed = [...final.stateDict()].filter(([name, w]) => {
    const a = w.toArray(), b = stage1.stateDict().get(name)!.toArray();
    return a.some((v, i) => v !== b[i]);
  }).length;
  t.true(changed > 10, `the first network's weights changed during stage 2 (${changed} tensors)`);

  // The boundary map VD2D3D was evaluated on is the final VD2D's, recomputed: not stage 1's.
  const s1 = readNpy(path.join(dir, 's1.npy'));
  const image = preprocessVolume(s1.data as Float32Array, s1.shape, 'slice');
  const used = readNpy(path.join(dir, 'eval', '0-s1.boundary.npy'));
  t.deepEqual(used.shape, dims);
  const fresh = await recursiveBoundaryMap(final, image, dims, { window: [5, 56, 56] });
  const early = await recursiveBoundaryMap(stage1, image, dims, { window: [5, 56, 56] });
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  t.true(maxDiff(used.data, fresh) < 1e-6, `the evaluation map equals a fresh map of the final VD2D (max difference ${maxDiff(used.data, fresh)})`);
  t.log(`max |final - stage 1| ${maxDiff(used.data, early)}; map range ${Math.min(...fresh)} .. ${Math.max(...fresh)}`);
  t.true(maxDiff(used.data, early) > 1e-4, 'and differs from the stage-1 map');
  const probs = readNpy(path.join(dir, 'eval', '0-s1.probabilities.npy'));
  t.deepEqual(probs.shape, [2, ...dims]);
  const boundary = readNpy(path.join(dir, 'eval', '0-s1.class1.npy'));
  t.deepEqual(boundary.shape, dims);
  t.deepEqual([...boundary.data], [...probs.data.subarray(62_720)], 'class 1\'s probabilities, alone');
});

test('rightAngles: every window is one of the square\'s 8 symmetries of a crop, values moved and never interpolated, labels and mask alike', (t) => {
  // 1 x 5 x 5, values 0..24: a (1, 5, 5) window is the whole slice under a symmetry.
  const values = Float32Array.from({ length: 25 }, (_, i) => i);
  const sampler = new VolumeSampler({ volume: values, shape: [1, 1, 5, 5], labels: values, mask: values.map((v) => v + 100), rotation: 'rightAngles' });
  const random = new Random(3);
  const seen = new Set<string>();
  for (let i = 0; i < 200; ++i) {
    const w = sampler.sample(random, [1, 5, 5]);
    const image = w.inputs.input!;
    t.deepEqual([...image].sort((a, b) => a - b), [...values], 'a permutation of the slice');
    t.deepEqual([...w.labels], [...image]);
    t.deepEqual([...w.mask!], [...image].map((v) => v + 100));
    // A symmetry of the square maps neighbours to neighbours: |a - b| is 1 or 5 along every row.
    for (let y = 0; y < 5; ++y) for (let x = 0; x < 4; ++x) t.true([1, 5].includes(Math.abs(image[y * 5 + x]! - image[y * 5 + x + 1]!)));
    seen.add(image.join());
  }
  t.is(seen.size, 8, 'all 8 symmetries are drawn');
  // A non-square window of a wider volume: a transposed crop or a plain one, integers only.
  const wide = Float32Array.from({ length: 2 * 6 * 7 }, (_, i) => i);
  const s2 = new VolumeSampler({ volume: wide, shape: [1, 2, 6, 7], labels: wide, rotation: 'rightAngles' });
  const shapes = new Set<number>();
  for (let i = 0; i < 100; ++i) {
    const w = s2.sample(random, [2, 2, 3]);
    t.true(w.inputs.input!.every((v) => Number.isInteger(v)));
    t.is(new Set(w.inputs.input!).size, 12);
    // Along the window's rows the step is 1 (x) or 7 (y, transposed).
    shapes.add(Math.abs(w.inputs.input![1]! - w.inputs.input![0]!));
  }
  t.deepEqual([...shapes].sort((a, b) => a - b), [1, 7]);
  // 'any' interpolates: some values are not the volume's.
  const any = new VolumeSampler({ volume: values, shape: [1, 1, 5, 5], labels: values, rotation: 'any' });
  const interpolated = Array.from({ length: 20 }, () => any.sample(random, [1, 3, 3]).inputs.input!).some((w) => w.some((v) => !Number.isInteger(v)));
  t.true(interpolated);
  t.regex(t.throws(() => new VolumeSampler({ volume: values, shape: [1, 1, 5, 5], labels: values, rotation: 'quarter' as never }))!.message,
    /^segvol: VolumeSampler: expected rotation 'none', 'any' or 'rightAngles', received .*quarter/);
  t.is((t.throws(() => new VolumeSampler({ volume: values, shape: [1, 1, 5, 5], labels: values, rotate: true, rotation: 'rightAngles' })) as Error & { code: string }).code, 'ERR_ARGUMENT');
});

test('per-patch rebalancing (the paper settings): class weights from the output patch\'s own labels, not the whole volume\'s', async (t) => {
  const s = znnTrainingSettings('vd2d');
  t.is(s.loss.weightsFrom, 'patch');
  t.is(s.augmentation.rotation, 'rightAngles');
  // A volume with 1 boundary voxel in 16; the (2, 2) output patch of the window below has 2 of 4.
  const labels = new Float32Array(16);
  labels[5] = 1;
  labels[6] = 1;
  const volume = Float32Array.from({ length: 16 }, (_, i) => i / 16);
  const data = new VolumeSampler({ volume, shape: [1, 1, 4, 4], labels, flip: {} });
  const window = data.sample(new Random(1), [1, 4, 4]);
  const batch = new Batch([window], [1, 4, 4], { input: 1 }, new Map([['input', 'input']]), 'cpu');
  const probs = Tensor.fromArray(Float32Array.from([0.9, 0.8, 0.3, 0.6, 0.1, 0.2, 0.7, 0.4]), [1, 2, 1, 2, 2]);
  const patchLabels = batch.labelValues([1, 2, 2]);
  t.deepEqual([...patchLabels], [1, 1, 0, 0]);
  const lossWith = (weights: Float32Array) => ops.loss(probs, Tensor.fromArray(patchLabels, [1, 1, 2, 2]), {
    kind: 'crossEntropy', classWeights: Tensor.fromArray(weights, [2]), normalize: 'voxels',
  }).toArray()[0]!;
  const perPatch = await new PhaseLoss(s.loss, data, ['output']).of({ output: probs }, batch);
  const global = await new PhaseLoss({ ...s.loss, weightsFrom: 'global' }, data, ['output']).of({ output: probs }, batch);
  t.true(Math.abs(perPatch.toArray()[0]! - lossWith(classWeightsFromCounts([2, 2], 'inverseFrequency'))) < 1e-6);
  t.true(Math.abs(global.toArray()[0]! - lossWith(classWeightsFromCounts([14, 2], 'inverseFrequency'))) < 1e-6);
  t.true(Math.abs(perPatch.toArray()[0]! - global.toArray()[0]!) > 1e-3);
  batch.dispose();
});

test('several stacks: drawn in proportion to their voxels or by weights; the paper\'s schedule fills counts left out', (t) => {
  const make = (value: number, depth: number) => new VolumeSampler({ volume: new Float32Array(depth * 16).fill(value), shape: [1, depth, 4, 4], labels: new Float32Array(depth * 16) });
  const count = (multi: MultiSampler) => {
    const random = new Random(5);
    let first = 0;
    for (let i = 0; i < 4000; ++i) if (multi.sample(random, [1, 4, 4]).inputs.input![0] === 1) ++first;
    return first / 4000;
  };
  t.true(Math.abs(count(new MultiSampler([make(1, 3), make(2, 1)])) - 0.75) < 0.03);
  t.true(Math.abs(count(new MultiSampler([make(1, 3), make(2, 1)], [1, 1])) - 0.5) < 0.03);
  t.deepEqual(lee2015Schedule, { n4: 90_000, vd2d: 90_000, vd2d3d: 90_000, vd2dBeforeRecursive: 60_000, vd2dDuringRecursive: 30_000 });
  const convnets = families.find((f) => f.name === 'convnets')!;
  const paper = convnets.training!.paperSettings!({ model: { preset: 'vd2d3d' }, data: {}, settings: 'paper' });
  t.is(paper!.steps, 90_000);
  t.is(paper!.rotation, 'rightAngles');
});

test('bad stack lists are refused with coded errors before any training, and nothing is written', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-protocol-bad-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const base = { model: { preset: 'vd2d', seed: 1 }, outputSize: [1, 2, 2], steps: 1 };
  const refused = (config: object) => {
    const error = t.throws(() => parseTrainConfig(JSON.stringify({ ...base, ...config }), 'bad.json')) as Error & { code: string };
    return `${error.code}: ${error.message}`;
  };
  t.regex(refused({ data: { stacks: [] } }), /^ERR_ARGUMENT: segvol: config bad\.json: data\.stacks: expected a non-empty list of stacks/);
  t.regex(refused({ data: { stacks: [stack(1), stack(2)], weights: [1] } }), /^ERR_ARGUMENT: segvol: config bad\.json: data\.weights: expected 2 weights, one per stack, received \[1\]/);
  t.regex(refused({ data: { stacks: [stack(1)], weights: [0] } }), /^ERR_ARGUMENT: segvol: .*data\.weights\[0\]: expected a weight > 0, received the number 0/);
  t.regex(refused({ data: { stacks: [{ volume: 's1.npy', labes: 'l1.npy' }] } }), /^ERR_ARGUMENT: segvol: config: unknown key 'data\.stacks\[0\]\.labes'; known: volume, labels, mask, normalize/);
  t.regex(refused({ data: { volume: 's1.npy', labels: 'l1.npy', stacks: [stack(2)] } }), /^ERR_ARGUMENT: segvol: .*give data\.stacks or data\.volume and data\.labels \(one stack\), not both/);
  t.regex(refused({ data: { volume: 's1.npy', labels: 'l1.npy', weights: [1] } }), /^ERR_ARGUMENT: segvol: .*data\.weights weigh the stacks of data\.stacks/);
  t.regex(refused({ data: { stacks: [stack(1)], rotation: 'diagonal' } }), /^ERR_ARGUMENT: segvol: .*data\.rotation: expected 'none', 'any' or 'rightAngles', received the string 'diagonal'/);
  t.regex(refused({ data: { stacks: [stack(1)] }, evaluation: { stacks: [{ volume: 's1.npy' }] } }), /^ERR_ARGUMENT: segvol: .*evaluation\.stacks\[0\]\.labels: expected a path/);
  const recursive = { model: { preset: 'vd2d3d', recursive: true }, data: { stacks: [stack(2), stack(3)] } };
  t.regex(refused({ ...recursive, recursive: { model: 'vd2d.safetensors', continueFirst: { steps: 5 } } }),
    /^ERR_ARGUMENT: segvol: .*recursive\.continueFirst trains the first network on with its own trainer: give its training \(recursive\.first\)/);
  t.regex(refused({ ...recursive, recursive: { model: 'vd2d.safetensors', stacks: [stack(4)], weights: [1, 1] } }),
    /^ERR_ARGUMENT: segvol: .*recursive\.weights: expected 3 weights > 0 \(data's 2 stacks, then recursive\.stacks' 1\)/);
  t.regex(refused({ ...recursive, recursive: { model: 'vd2d.safetensors', continueFirst: { steps: 2, data: 'some' } } }), /continueFirst\.data: expected 'first' or 'all'/);

  // Shapes are checked when the files are read, before the first step: no checkpoint appears.
  writeStacks(dir, 2, [2, 8, 8]);
  const em = syntheticEm({ depth: 2, height: 8, width: 9, seed: 1 });
  writeNpy(path.join(dir, 'wrong.npy'), { shape: em.shape, data: em.labels });
  const load = (data: object) => {
    const config = parseTrainConfig(JSON.stringify({ ...base, data, checkpoint: { path: 'm.safetensors' } }), 'bad.json') as TrainConfig;
    const error = t.throws(() => loadTrainingData(config, dir)) as Error & { code: string };
    return `${error.code}: ${error.message}`;
  };
  t.is(load({ stacks: [stack(1), { volume: 's2.npy', labels: 'wrong.npy' }] }),
    'ERR_SHAPE: segvol: data.stacks[1].labels wrong.npy: expected shape (2, 8, 8) like the volume, received (2, 8, 9)');
  t.regex(load({ stacks: [stack(1), { volume: ['s2.npy', 's1.npy'], labels: 'l2.npy' }] }), /^ERR_SHAPE: segvol: data\.stacks\[1\]: 2 channels \(modalities\), data\.stacks\[0\] 1/);
  const config = parseTrainConfig(JSON.stringify({ ...base, data: { stacks: [stack(1), { volume: 's2.npy', labels: 'wrong.npy' }] }, checkpoint: { path: 'm.safetensors' } }), 'bad.json');
  await t.throwsAsync(trainFromConfig(config, dir, { device: 'cpu', signal: new AbortController().signal }, quietCli()), { code: 'ERR_SHAPE' } as never);
  t.false(fs.existsSync(path.join(dir, 'm.safetensors')));
  t.deepEqual(fs.readdirSync(dir).sort(), ['l1.npy', 'l2.npy', 's1.npy', 's2.npy', 'wrong.npy']);
});

test('segvol train --config runs a config of several stacks with rightAngles and an evaluation stack', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-protocol-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeStacks(dir, 3, [2, 100, 100]);
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'n4', seed: 1 }, settings: 'paper', outputSize: [1, 2, 2], steps: 2, checkpoint: { path: 'n4.safetensors' },
    data: { stacks: [stack(2), stack(3)], weights: [2, 1], rotation: 'rightAngles' },
    evaluation: { stacks: [stack(1)], window: [1, 50, 50] },
  }));
  const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
  const r = spawnSync(process.execPath, ['--require=ts-node/register', cli, 'train', '--config', path.join(dir, 'train.json')],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 240_000 });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /finished at step 2/);
  t.regex(r.stdout, /evaluation stack 0 \(s1\.npy\): pixel error 0\.\d+ over 20,000 voxels/);
  t.true(fs.existsSync(path.join(dir, 'n4.safetensors')));
});

test('segvol synth --recursive writes four stacks and a train.json of the paper\'s protocol that the config reader accepts', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-protocol-synth-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const synth = families.find((f) => f.name === 'convnets')!.synth!;
  t.is(synth.flag!.flags, '--recursive');
  const cli = quietCli();
  synth.run({ out: dir, size: [6, 120, 120], seed: 1 }, cli);
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('stack')).length, 8);
  const config = parseTrainConfig(fs.readFileSync(path.join(dir, 'train.json'), 'utf8'), 'train.json');
  t.deepEqual(config.data.stacks!.map((s) => s.volume), ['stack2.npy', 'stack3.npy']);
  t.deepEqual(config.evaluation!.stacks.map((s) => s.volume), ['stack1.npy']);
  const r = config.recursive as { stacks: Array<{ volume: string }>; continueFirst: { steps: number }; first: { steps: number } };
  t.deepEqual(r.stacks.map((s) => s.volume), ['stack4.npy']);
  t.deepEqual([r.first.steps, r.continueFirst.steps, config.steps], [200, 100, 300]);
  t.deepEqual(config.outputSize, [1, 12, 12]);
});
