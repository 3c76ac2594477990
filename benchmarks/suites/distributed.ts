// npm run bench -- distributed: data-parallel training on this machine's cores, for the
// PyraMiD paper network and N4, at one global batch of 2: one process on 2 threads
// against 2 MPI ranks on 1 thread each (Open MPI's mpirun; each rank draws 1 window).
// Prints a JSON line per run (median step after 2 warm-ups, output voxels/s, and for the
// ranks the allreduce of the gradients timed alone and its share of a step), then the
// ratios. Needs mpirun and segvol built with MPI.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { distributedStatus } from '../../lib';
import { round, type Suite } from '../common';

const worker = path.join(__dirname, '..', 'distributed_worker.ts');
const root = path.join(__dirname, '..', '..');

interface Row { model: string; ranks: number; step_ms: number; output_voxels_per_s: number; allreduce_ms: number | null; allreduce_share: number | null }

function run(model: string, ranks: number, steps: number): Row | null {
  const env = { ...process.env, MODEL: model, STEPS: String(steps), BATCH: '2', OMP_NUM_THREADS: ranks === 1 ? '2' : '1',
    OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', ...(ranks > 1 ? { DISTRIBUTED: '1' } : {}) };
  const node = [process.execPath, '-r', 'ts-node/register/transpile-only', worker];
  const r = ranks === 1 ? spawnSync(node[0]!, node.slice(1), { cwd: root, env, encoding: 'utf8' })
    : spawnSync('mpirun', ['-np', String(ranks), '--oversubscribe', '--bind-to', 'core', ...['MODEL', 'STEPS', 'BATCH', 'OMP_NUM_THREADS', 'DISTRIBUTED'].flatMap((k) => ['-x', k]), ...node],
      { cwd: root, env, encoding: 'utf8' });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.status !== 0 || !line) {
    console.error(`${model}, ${ranks} rank(s) failed: ${r.stderr.slice(-2000)}`);
    process.exitCode = 1;
    return null;
  }
  console.log(line);
  return JSON.parse(line) as Row;
}

export const distributed: Suite = {
  name: 'distributed',
  measures: 'steps per run: --steps (default 8), the first 2 not timed',
  async run({ value }) {
    const status = distributedStatus();
    if (!status.available) {
      console.error(`distributed: ${status.reason}`);
      process.exitCode = 1;
      return;
    }
    const steps = Number(value('--steps') ?? 8);
    for (const model of ['pyramid', 'n4']) {
      const one = run(model, 1, steps), two = run(model, 2, steps);
      if (one && two) {
        console.log(JSON.stringify({
          summary: model, one_rank_two_threads_ms: one.step_ms, two_ranks_one_thread_ms: two.step_ms,
          speedup_of_ranks: round(one.step_ms / two.step_ms, 2), allreduce_share: two.allreduce_share,
        }));
      }
    }
  },
};
