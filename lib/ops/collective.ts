// Collectives across the ranks of a distributed job (an MPI group opened with
// openDistributedGroup): not differentiable, like the optimizer update. They run on the
// communication thread, the one MPI was started from, and return Promises (so they run
// beside backward on the compute thread).
import { SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';

export function collectiveOps(_impl: ImplementationName) {
  return {
    ops: {
      /**
       * Each tensor's mean over the ranks, as new tensors (the inputs are left as they are).
       * Every rank passes tensors of the same sizes in the same order; a peer that exits or
       * stays silent for `timeoutSeconds` rejects with ERR_PEER_LOST on the others.
       */
      async allreduceMean(tensors: readonly Tensor[], options: { timeoutSeconds?: number; what?: string } = {}): Promise<Tensor[]> {
        const timeout = options.timeoutSeconds ?? 300;
        if (!(timeout > 0)) throw new SegvolError('ERR_ARGUMENT', `allreduceMean: expected timeoutSeconds > 0, received ${timeout}`);
        const handles = tensors.map((t, i) => handleOf(t, 'allreduceMean', `tensor ${i}`));
        const means = await native.distributedAllreduceMean(handles, timeout, options.what ?? 'allreduceMean');
        return means.map((h) => Tensor.fromHandle(h));
      },
    },
    backward: {},
  };
}
