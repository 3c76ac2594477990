// One rank of the ordering test (test/distributed.test.ts): 40 allreduces of different
// sizes launched at once, without awaiting each. They reach MPI through libuv's pool
// threads in any order; segvol must issue them in the order they were made, or the
// ranks' sizes would not match. Prints OK or what went wrong.
import { closeDistributedGroup, openDistributedGroup, ops, Tensor } from '../../lib';

async function main(): Promise<void> {
  const group = await openDistributedGroup({ timeoutSeconds: 30 });
  const launched = Array.from({ length: 40 }, (_, i) => ops.allreduceMean([Tensor.full([i * 97 + 1], group.rank + i)]));
  const results = await Promise.all(launched);
  const wrong = results.map((r, i) => ({ i, v: r[0]!.toArray()[0], size: r[0]!.size }))
    .filter(({ i, v, size }) => size !== i * 97 + 1 || Math.abs(v! - (i + (group.size - 1) / 2)) > 1e-6);
  await closeDistributedGroup();
  console.log(wrong.length === 0 ? 'OK' : `WRONG ${JSON.stringify(wrong.slice(0, 3))}`);
}

main().catch((error: Error & { code?: string }) => {
  console.error(`[${error.code ?? 'ERROR'}] ${error.message}`);
  process.exit(1);
});
