// segvol info: the compute backends of this build, and whether it trains distributed.
import type { Command } from 'commander';
import { backends } from '../../core/backends';
import { distributedStatus } from '../../core/distributed';
import { segvolVersion } from '../../core/version';

export function registerInfo(program: Command): void {
  program.command('info').description('list the compute backends of this build').action(() => {
    console.log(`segvol ${segvolVersion()} (node ${process.version})`);
    console.log('backends:');
    for (const b of backends()) {
      console.log(`  ${b.name.padEnd(5)} ${b.available ? `available  ${b.detail}` : `unavailable: ${b.reason}`}`);
    }
    // Loads the MPI plugin (and its MPI library) without starting MPI.
    const d = distributedStatus();
    console.log(`distributed training: ${d.available ? `MPI available; cuda ranks average through ${d.cudaCollective}` : `unavailable: ${d.reason}`}`);
  });
}
