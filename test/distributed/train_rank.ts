// One process of the distributed tests (test/distributed.test.ts): trains a small
// PyraMiD network for STEPS steps at the global batch BATCH, either as a rank of an MPI
// job (DISTRIBUTED=1, started by mpirun) or alone with indexed window seeds, and writes
// its weights and losses (rank 0, or the lone process) to OUT as JSON.
import * as fs from 'node:fs';
import { closeDistributedGroup, distributedStatus, presets, Trainer, VolumeSampler } from '../../lib';
import { syntheticEm } from '../../lib/data/synthetic';

async function main(): Promise<void> {
  const steps = Number(process.env.STEPS ?? 3), batchSize = Number(process.env.BATCH ?? 2);
  const em = syntheticEm({ depth: 8, height: 32, width: 32, seed: 4 });
  const data = new VolumeSampler({ volume: em.image, shape: [1, 8, 32, 32], labels: em.labels });
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4, 6], fc: [5], kernel: 3, seed: 1 });
  if (process.env.DEVICE === 'cuda') model.to('cuda');
  const distributed = process.env.DISTRIBUTED === '1';
  const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? 0);
  // SEED_OF_RANK_1: rank 1 runs with another seed (the start-up check must refuse it).
  const seed = rank === 1 && process.env.SEED_OF_RANK_1 ? Number(process.env.SEED_OF_RANK_1) : 7;
  const trainer = new Trainer(model, {
    seed, optimizer: process.env.OPTIMIZER === 'adam' ? { kind: 'adam', lr: 1e-2 } : { kind: 'sgd', lr: 0.05, momentum: 0.9 },
    ...(distributed ? {
      distributed: { kind: 'mpi' as const, timeoutSeconds: Number(process.env.TIMEOUT ?? 60), ...(process.env.BUCKET_MIB ? { bucketMiB: Number(process.env.BUCKET_MIB) } : {}) },
    } : { windowSeeds: 'indexed' as const }),
  });
  const losses: number[] = [];
  const checkpoint = process.env.CHECKPOINT;
  if (process.env.RESUME) trainer.resume(process.env.RESUME);
  const pidLine = `rank ${process.env.OMPI_COMM_WORLD_RANK ?? '-'} pid ${process.pid}`;
  console.log(pidLine);
  await trainer.fit({
    data, size: [4, 16, 16], batchSize, steps, onProgress: (p) => losses.push(p.loss),
    ...(checkpoint ? { checkpoint: { path: checkpoint, every: 1 } } : {}),
    ...(process.env.STEP_PAUSE_MS ? { afterStep: () => new Promise<void>((r) => setTimeout(r, Number(process.env.STEP_PAUSE_MS))) } : {}),
  });
  if (rank === 0 && process.env.OUT) {
    const weights = Object.fromEntries([...model.namedParameters()].map(([name, p]) => [name, [...p.toArray()]]));
    fs.writeFileSync(process.env.OUT, JSON.stringify({ losses, weights, status: distributedStatus() }));
  }
  if (distributed) await closeDistributedGroup();
}

main().catch((error: Error & { code?: string }) => {
  console.error(`[${error.code ?? 'ERROR'}] ${error.message}`);
  const status = error.code === 'ERR_PEER_LOST' ? 69 : 1;
  // mpirun's own status does not always carry a rank's (with --enable-recovery it is 0).
  if (process.env.EXIT_FILE) fs.writeFileSync(`${process.env.EXIT_FILE}.${process.env.OMPI_COMM_WORLD_RANK ?? 0}`, String(status));
  process.exit(status);
});
