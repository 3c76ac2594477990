// The consistent ConvLSTM paper's two pipelines on synthetic EM, from `segvol train` configs
// as a user runs them: the waterz baseline (an affinity U-Net, then watershed and
// agglomeration: segvol segment), and the consistent network propagating the objects of
// the agglomerated first frame. Each is scored by the SNEMI3D adapted Rand error on the
// held-out stack and must beat the same pipeline with an untrained network.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { presets } from '../lib';

const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const root = path.join(__dirname, '..');
function segvol(args: string[]) {
  const r = spawnSync(process.execPath, ['--require=ts-node/register', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 600_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('affinities + agglomeration, and the consistent network from the agglomerated first frame, trained from configs, each beat their untrained versions (SNEMI3D adapted Rand error)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-pipeline-'));
  const file = (name: string) => path.join(dir, name);
  const ok = (r: ReturnType<typeof segvol>, what: string) => t.is(r.status, 0, `${what}: ${r.err}`);
  const ari = (pred: string) => {
    const r = segvol(['evaluate', '--pred', pred, '--truth', file('validation_segments.npy'), '--metrics', 'rand', '--json']);
    ok(r, `evaluate ${pred}`);
    return (JSON.parse(r.out) as { rand: { adaptedRandError: number } }).rand.adaptedRandError;
  };
  ok(segvol(['synth', '--affinities', '--out', dir, '--size', '20,64,64']), 'synth');
  // The waterz baseline: the affinity U-Net from synth's train.json, then segvol segment.
  ok(segvol(['train', '--config', file('train.json')]), 'train the affinity U-Net');
  presets.affinityUNet({ fmaps: 6, seed: 1 }).save(file('untrained_affinities.safetensors'));
  const baseline: Record<string, number> = {};
  for (const [name, model] of [['trained', 'model.safetensors'], ['untrained', 'untrained_affinities.safetensors']] as const) {
    ok(segvol(['segment', '--model', file(model), '--in', file('validation_volume.npy'), '--out', file(`${name}_segmentation.zarr`),
      '--thresholds', '0.5', '--window', '8,36,36']), `segment (${name})`);
    baseline[name] = ari(file(`${name}_segmentation.zarr/segmentation_0.5`));
  }
  t.log(`affinities + agglomeration (threshold 0.5): adapted Rand error ${baseline.trained!.toFixed(3)} trained, ${baseline.untrained!.toFixed(3)} untrained`);
  t.true(baseline.trained! < baseline.untrained!, 'the trained U-Net\'s segmentation is better');
  // The consistent network, trained from its own config on the same stack.
  fs.writeFileSync(file('consistent.json'), JSON.stringify({
    model: { preset: 'consistentConvLstm', hidden: [8, 8, 8, 8, 8], seed: 1 }, settings: 'paper', size: [3, 64, 64], epochs: 8, maxObjects: 4,
    optimizer: { kind: 'adam', lr: 0.01 }, data: { volume: 'volume.npy', labels: 'segments.npy' }, checkpoint: { path: 'consistent.safetensors' },
  }));
  const trained = segvol(['train', '--config', file('consistent.json')]);
  ok(trained, 'train the consistent network');
  t.regex(trained.out, /finished after 8 epoch\(s\)/);
  const untrained = presets.consistentConvLstm({ hidden: [8, 8, 8, 8, 8], seed: 1 });
  untrained.info = { normalize: 'slice' };  // as segvol train records it: the same pre-processing for both
  untrained.save(file('untrained_consistent.safetensors'));
  const propagated: Record<string, number> = {};
  for (const [name, model] of [['trained', 'consistent.safetensors'], ['untrained', 'untrained_consistent.safetensors']] as const) {
    const r = segvol(['predict', '--model', file(model), '--in', file('validation_volume.npy'), '--out', file(`${name}_propagated.npy`),
      '--reference', file('trained_segmentation.zarr/segmentation_0.5'), '--window', '3']);
    ok(r, `propagate (${name})`);
    t.regex(r.out, /from the reference labels/);
    propagated[name] = ari(file(`${name}_propagated.npy`));
  }
  t.log(`consistent ConvLSTM from the agglomerated first frame: adapted Rand error ${propagated.trained!.toFixed(3)} trained, ${propagated.untrained!.toFixed(3)} untrained`);
  t.true(propagated.trained! < propagated.untrained!, 'the trained network propagates better');
  fs.rmSync(dir, { recursive: true, force: true });
});
