#!/usr/bin/env node
// The segvol command line. `info` lists backends and versions; more commands
// (train, predict, demo, profile) arrive with the training issue.
import { backends } from './backends';

function info(): void {
  const pkg = require('../../package.json') as { version: string };
  console.log(`segvol ${pkg.version} (node ${process.version})`);
  console.log('backends:');
  for (const b of backends()) {
    const state = b.available ? `available  ${b.detail}` : `unavailable: ${b.reason}`;
    console.log(`  ${b.name.padEnd(5)} ${state}`);
  }
}

function main(argv: string[]): number {
  const command = argv[0] ?? 'info';
  switch (command) {
    case 'info':
    case 'backends':
      info();
      return 0;
    case '--help':
    case '-h':
    case 'help':
      console.log('usage: segvol <command>\n\ncommands:\n  info   list the compute backends of this build');
      return 0;
    default:
      console.error(`segvol: unknown command '${command}'. Run 'segvol help' for the list of commands.`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
