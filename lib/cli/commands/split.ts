// segvol split: a folder of cases (a data layout a family reads) split into k folds or a
// fixed train/test hold-out, drawn with a seed and written as JSON for segvol train and
// segvol evaluate to read.
import type { Command } from 'commander';
import { SegvolError } from '../../core/errors';
import { families } from '../../models';
import { positiveIntegerOption, terminal } from '../context';

export function registerSplit(program: Command): void {
  // One family reads case folders today; a second would add a choice of layout here.
  const provider = families.find((f) => f.cases)?.cases;
  if (!provider) return;
  program.command('split')
    .description(`split ${provider.description} into k folds (cross-validation) or a train/test hold-out, as JSON for train (data.split, data.fold) and evaluate (--split, --fold)`)
    .requiredOption('--cases <folder>', `the folder of ${provider.description}`)
    .option('--folds <k>', 'k folds: fold i tests on its cases and trains on the others', positiveIntegerOption)
    .option('--test <n>', 'a fixed hold-out of n test cases (the others train)', positiveIntegerOption)
    .option('--stratify', 'split each parent folder (e.g. HGG and LGG) in proportion')
    .option('--seed <n>', 'random seed: the same seed and cases give the same split', (v) => Number(v), 1)
    .requiredOption('--out <file.json>', 'the split file')
    .action((o: { cases: string; folds?: number; test?: number; stratify?: boolean; seed: number; out: string }) => {
      if ((o.folds === undefined) === (o.test === undefined)) throw new SegvolError('ERR_ARGUMENT', 'give --folds <k> or --test <n>, one of them');
      if (!Number.isInteger(o.seed)) throw new SegvolError('ERR_ARGUMENT', `--seed: expected an integer, received ${o.seed}`);
      provider.split({ cases: o.cases, out: o.out, seed: o.seed, stratify: o.stratify ?? false,
        ...(o.folds !== undefined ? { folds: o.folds } : {}), ...(o.test !== undefined ? { test: o.test } : {}) }, terminal);
    });
}
