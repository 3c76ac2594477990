// The process group of a distributed job: MPI, started by mpirun, srun or another MPI
// launcher. One group per process, opened once; the collectives on tensors are ops
// (ops.allreduceMean), the byte-level ones here serve start-up checks.
import { SegvolError } from './errors';
import { native } from './native';

export interface DistributedGroup {
  /** This process's rank, 0..size-1. */
  rank: number;
  size: number;
  /** The MPI library ("Open MPI v4.1.4"). */
  implementation: string;
  /** Every rank's bytes (the same length on each), in rank order. */
  allgather(bytes: Uint8Array, what?: string): Promise<Uint8Array[]>;
  /** root's bytes on every rank (each passes a buffer of the same length). */
  broadcast(bytes: Uint8Array, root: number, what?: string): Promise<Uint8Array>;
  timeoutSeconds: number;
}

/**
 * Whether this build can open a group (the MPI plugin), and why not; how cuda tensors are
 * averaged ('nccl', or 'host memory: <why not NCCL>'); how many allreduces ran in this process
 * (a step runs one per gradient bucket), and how many of them NCCL did.
 */
export function distributedStatus(): { available: boolean; reason: string; cudaCollective: string; reductions: number; ncclReductions: number } {
  const { available, reason, cudaCollective, reductions, ncclReductions } = native.distributedStatus();
  return { available, reason, cudaCollective, reductions, ncclReductions };
}

/** The rank and size an MPI launcher gave this process, from its environment (undefined: not launched so). */
export function launcherEnv(env: NodeJS.ProcessEnv = process.env): { rank: number; size: number } | undefined {
  const pairs: Array<[string, string]> = [['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'], ['PMI_RANK', 'PMI_SIZE'], ['PMIX_RANK', 'PMIX_SIZE'], ['SLURM_PROCID', 'SLURM_NTASKS']];
  for (const [rank, size] of pairs) {
    if (env[rank] !== undefined && env[size] !== undefined) return { rank: Number(env[rank]), size: Number(env[size]) };
  }
  return undefined;
}

let opened: Promise<DistributedGroup> | undefined;

/**
 * Opens this process's group (once; later calls return the same). Rejects with
 * ERR_NOT_BUILT where segvol was built without MPI, and ERR_PEER_LOST where the
 * other ranks do not all arrive within startupTimeoutSeconds.
 */
export function openDistributedGroup(options: { timeoutSeconds?: number; startupTimeoutSeconds?: number } = {}): Promise<DistributedGroup> {
  const timeoutSeconds = options.timeoutSeconds ?? 300;
  const startup = options.startupTimeoutSeconds ?? 600;
  for (const [name, v] of [['timeoutSeconds', timeoutSeconds], ['startupTimeoutSeconds', startup]] as const) {
    if (typeof v !== 'number' || !(v > 0)) return Promise.reject(new SegvolError('ERR_ARGUMENT', `distributed: ${name}: expected a positive number of seconds, received ${String(v)}`));
  }
  const status = native.distributedStatus();
  if (!status.available) return Promise.reject(new SegvolError('ERR_NOT_BUILT', `distributed 'mpi': ${status.reason}`));
  opened ??= native.distributedInit(startup).then(({ rank, size, implementation }) => ({
    rank, size, implementation, timeoutSeconds,
    allgather: (bytes: Uint8Array, what = 'allgather') => native.distributedAllgather(bytes, timeoutSeconds, what),
    broadcast: (bytes: Uint8Array, root: number, what = 'broadcast') => native.distributedBroadcast(bytes, root, timeoutSeconds, what),
  }));
  opened.catch(() => { opened = undefined; });
  return opened;
}

/** Ends MPI in this process (after the last collective); a process that exits without it is fine too. */
export async function closeDistributedGroup(): Promise<void> {
  if (!opened) return;
  opened = undefined;
  await native.distributedFinalize();
}
