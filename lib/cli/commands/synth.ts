// segvol synth: synthetic training data and a train.json, from the default family
// or the family whose flag is given.
import type { Command } from 'commander';
import { SegvolError } from '../../core/errors';
import type { Size3 } from '../../data/samplers';
import { families } from '../../models';
import { addOptions, integerList, optionKey, terminal } from '../context';

export function registerSynth(program: Command): void {
  const synths = families.flatMap((f) => (f.synth ? [f.synth] : []));
  const fallback = synths.find((s) => !s.flag)!;
  const flagged = synths.filter((s) => s.flag);
  const command = program.command('synth')
    .description('write synthetic training data and a training config (train.json): an EM-like volume with labels by default; ' +
      flagged.map((s) => `with ${s.flag!.flags}, ${s.flag!.description}`).join('; '))
    .option('--out <dir>', 'output folder', 'segvol-data')
    .option('--size <d,h,w>', `volume size (default ${fallback.defaultSize.join(',')}${flagged.map((s) => `; ${s.defaultSize.join(',')} with ${s.flag!.flags}`).join('')})`,
      integerList)
    .option('--seed <n>', 'random seed', (v) => Number(v), 1);
  for (const s of flagged) addOptions(command, [s.flag!, ...(s.options ?? [])]);
  command.action((o: { out: string; size?: number[]; seed: number } & Record<string, unknown>) => {
    const chosen = flagged.filter((s) => o[optionKey(s.flag!.flags)]);
    if (chosen.length > 1) throw new SegvolError('ERR_ARGUMENT', `give one of ${chosen.map((s) => s.flag!.flags).join(', ')}`);
    const synth = chosen[0] ?? fallback;
    if (o.size && o.size.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--size: expected d,h,w, received ${o.size.join(',')}`);
    synth.run({ ...o, out: o.out, seed: o.seed, size: (o.size ?? synth.defaultSize) as Size3 }, terminal);
  });
}
