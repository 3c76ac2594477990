// One process of npm run bench -- distributed: trains MODEL (pyramid: the PyraMiD paper
// network on 8x48x48 windows; n4: N4 at a 1x48x48 output) for STEPS steps at the global
// batch BATCH, alone or as a rank of an MPI job (DISTRIBUTED=1), and prints, from rank 0,
// one JSON line: the median step time after two warm-up steps, voxels per second, and
// in a distributed run the time of one allreduce of the model's gradients (the same
// sizes, timed alone) and its share of a step.
import { closeDistributedGroup, ops, presets, Tensor, Trainer, VolumeSampler } from '../lib';
import { syntheticEm } from '../lib/data/synthetic';
import { median, round } from './common';

async function main(): Promise<void> {
  const name = process.env.MODEL ?? 'pyramid';
  const steps = Number(process.env.STEPS ?? 8), batchSize = Number(process.env.BATCH ?? 2);
  const distributed = process.env.DISTRIBUTED === '1';
  const em = syntheticEm({ depth: 16, height: 160, width: 160, seed: 4 });
  const data = new VolumeSampler({ volume: em.image, shape: [1, 16, 160, 160], labels: em.labels });
  const model = name === 'n4' ? presets.n4({ seed: 1 }) : presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [16, 32, 64], fc: [25, 45], kernel: 7, seed: 1 });
  const shape = name === 'n4' ? { outputSize: [1, 48, 48] as [number, number, number] } : { size: [8, 48, 48] as [number, number, number] };
  const trainer = new Trainer(model, {
    seed: 3, optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 }, loss: name === 'n4' ? 'crossEntropy' : 'squaredError',
    ...(distributed ? { distributed: 'mpi' as const } : { windowSeeds: 'indexed' as const }),
  });
  const times: number[] = [];
  let last = performance.now();
  let voxelsPerStep = 0;
  await trainer.fit({
    data, ...shape, batchSize, steps,
    onProgress: () => { const now = performance.now(); times.push(now - last); last = now; },
  });
  const outputVoxels = name === 'n4' ? 48 * 48 : 8 * 48 * 48;
  voxelsPerStep = outputVoxels * batchSize;
  const stepMs = median(times.slice(2));
  const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? 0), ranks = Number(process.env.OMPI_COMM_WORLD_SIZE ?? 1);
  let allreduceMs: number | null = null;
  if (distributed) {
    const grads = [...model.namedParameters()].map(([, p]) => Tensor.full(p.shape, 1));
    const runs: number[] = [];
    for (let i = 0; i < 7; ++i) {
      const start = performance.now();
      for (const t of await ops.allreduceMean(grads)) t.dispose();
      runs.push(performance.now() - start);
    }
    allreduceMs = median(runs.slice(2));
    for (const g of grads) g.dispose();
    await closeDistributedGroup();
  }
  if (rank === 0) {
    const parameters = [...model.namedParameters()].reduce((n, [, p]) => n + p.size, 0);
    console.log(JSON.stringify({
      model: name, ranks, threads: Number(process.env.OMP_NUM_THREADS ?? 0), batch: batchSize, step_ms: round(stepMs, 1),
      output_voxels_per_s: Math.round((voxelsPerStep * 1000) / stepMs), parameters,
      allreduce_ms: allreduceMs === null ? null : round(allreduceMs, 2), allreduce_share: allreduceMs === null ? null : round(allreduceMs / stepMs, 4),
    }));
  }
}

main().catch((error: Error & { code?: string }) => {
  console.error(`[${error.code ?? 'ERROR'}] ${error.message}`);
  process.exit(1);
});
