#!/usr/bin/env node
// The segvol command line: each command registers itself (commands/), the model
// families add their pieces through the registry (lib/models).
import { Command } from 'commander';
import { segvolVersion } from '../core/version';
import { commands } from './commands';

export function createProgram(): Command {
  const program = new Command();
  program.name('segvol').description('Volumetric segmentation with recurrent and convolutional networks').version(segvolVersion());
  for (const register of commands) register(program);
  return program;
}

if (require.main === module) {
  createProgram().parseAsync(process.argv).catch((error: Error & { code?: string }) => {
    console.error(`segvol: ${error.message.replace(/^segvol: /, '')}`);
    process.exitCode = 1;
  });
}
