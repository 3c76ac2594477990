// Case splits of a BRATS folder: k folds (the paper's five-fold evaluation) or a fixed
// train/test hold-out (its 244 training and 30 test cases), drawn with a seed and kept in
// a JSON file that `segvol train` (data.split, data.fold) and `segvol evaluate --brats`
// (--split, --fold) read. Cases are named by their folder's path under the root
// ('HGG/brats_2013_pat0001_1'), so a split names the same cases on any machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { Random } from '../../core/random';
import { positiveInteger } from '../../core/validate';
import { findBratsCases, type BratsCaseFiles } from './brats';

export const splitFormat = 'segvol-split-1';

export interface CaseSplit {
  format: typeof splitFormat;
  /** The folder of cases, relative to the split file's folder when written by writeCaseSplit. */
  root: string;
  seed: number;
  /** Whether each group (a case's parent folder, e.g. HGG and LGG) was split in proportion. */
  stratified: boolean;
  /** Every case, sorted. */
  cases: string[];
  /** k folds: fold i tests on folds[i] and trains on the others. */
  folds?: string[][];
  /** A fixed hold-out. */
  train?: string[];
  test?: string[];
}

export interface SplitOptions {
  /** k >= 2 folds; or give test. */
  folds?: number;
  /** Cases held out for testing (the paper: 30); or give folds. */
  test?: number;
  seed?: number;
  /** Split each parent folder (HGG, LGG) in proportion (default false). */
  stratify?: boolean;
}

/** A case's name under root: its folder's relative path with '/' separators. */
function caseKey(root: string, folder: string): string {
  return path.relative(root, folder).split(path.sep).join('/');
}

function shuffled<T>(items: readonly T[], random: Random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; --i) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Integer shares of total in proportion to sizes, by largest remainder (ties to the earlier group). */
function proportional(sizes: readonly number[], total: number): number[] {
  const sum = sizes.reduce((a, b) => a + b, 0);
  const exact = sizes.map((s) => (s * total) / sum);
  const shares = exact.map(Math.floor);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0, left = total - shares.reduce((a, b) => a + b, 0); k < left; ++k) shares[order[k]![1]]! += 1;
  return shares;
}

/**
 * Splits case names into k folds or a hold-out, deterministically for a seed. Folds: each
 * group's cases shuffled, then dealt to the folds in turn (continuing across groups), so fold
 * sizes differ by at most one. Hold-out: `test` cases drawn, per group in proportion when stratified.
 */
export function splitCases(names: readonly string[], options: SplitOptions): Omit<CaseSplit, 'root'> {
  const where = 'splitCases';
  if ((options.folds === undefined) === (options.test === undefined)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: give folds (k-fold cross-validation) or test (a hold-out of that many cases), one of them`);
  }
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed)) throw new SegvolError('ERR_ARGUMENT', `${where}: expected an integer seed, received ${describe(seed)}`);
  const unique = [...new Set(names)].sort();
  if (unique.length !== names.length) throw new SegvolError('ERR_ARGUMENT', `${where}: case names must be unique; ${names.length - unique.length} repeat`);
  const stratified = options.stratify ?? false;
  const groupOf = (name: string) => (stratified && name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '');
  const groups = [...new Set(unique.map(groupOf))].sort();
  const random = new Random(seed);
  const members = groups.map((g) => shuffled(unique.filter((n) => groupOf(n) === g), random));
  const sorted = (list: string[]) => list.sort();
  if (options.folds !== undefined) {
    const k = positiveInteger(options.folds, `${where}: folds`);
    if (k < 2 || k > unique.length) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: expected folds from 2 to the number of cases (${unique.length}), received ${k}`);
    }
    const folds = Array.from({ length: k }, () => [] as string[]);
    let next = 0;
    for (const list of members) for (const name of list) folds[next++ % k]!.push(name);
    return { format: splitFormat, seed, stratified, cases: unique, folds: folds.map(sorted) };
  }
  const n = positiveInteger(options.test, `${where}: test`);
  if (n >= unique.length) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected fewer test cases than cases (${unique.length}), received ${n}; leave some to train on`);
  }
  const shares = proportional(members.map((m) => m.length), n);
  const test = members.flatMap((list, g) => list.slice(0, shares[g]));
  const held = new Set(test);
  return { format: splitFormat, seed, stratified, cases: unique, train: unique.filter((c) => !held.has(c)), test: sorted(test) };
}

/** The BRATS cases under root, split; root is recorded relative to relativeTo (the split file's folder). */
export function splitBratsCases(root: string, options: SplitOptions, relativeTo = process.cwd()): CaseSplit {
  const files = findBratsCases(root);
  const names = files.map((f) => caseKey(root, f.folder));
  if (names.includes('')) throw new SegvolError('ERR_ARGUMENT', `split: ${root} is one case folder; give the folder that holds the cases`);
  const split = splitCases(names, options);
  return { ...split, root: path.relative(relativeTo, path.resolve(root)).split(path.sep).join('/') || '.' };
}

/** Writes a split as JSON (root relative to the file's folder). */
export function writeCaseSplit(file: string, root: string, options: SplitOptions): CaseSplit {
  const split = splitBratsCases(root, options, path.dirname(path.resolve(file)));
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(split, null, 2)}\n`);
  return split;
}

/** Reads and checks a split file. */
export function readCaseSplit(file: string): CaseSplit {
  let split: CaseSplit;
  try {
    split = JSON.parse(fs.readFileSync(file, 'utf8')) as CaseSplit;
  } catch (error) {
    throw new SegvolError('ERR_FORMAT', `split: cannot read ${file} as JSON (${(error as Error).message}); write one with segvol split`);
  }
  const lists = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const ok = split !== null && typeof split === 'object' && split.format === splitFormat && typeof split.root === 'string' && lists(split.cases) &&
    (split.folds !== undefined ? Array.isArray(split.folds) && split.folds.every(lists) : lists(split.train) && lists(split.test));
  if (!ok) {
    throw new SegvolError('ERR_FORMAT', `split: ${file} is not a ${splitFormat} file (format, root, cases, and folds or train and test); write one with segvol split`);
  }
  return split;
}

/** The case names of one part of a split: with folds, fold k's test cases or the other folds' (train). */
export function splitPart(split: CaseSplit, part: 'train' | 'test', fold?: number): string[] {
  if (split.folds) {
    const k = split.folds.length;
    if (fold === undefined || !Number.isInteger(fold) || fold < 0 || fold >= k) {
      throw new SegvolError('ERR_ARGUMENT', `split: the split has ${k} folds; expected a fold from 0 to ${k - 1}, received ${describe(fold)}`);
    }
    return part === 'test' ? [...split.folds[fold]!] : split.folds.filter((_, i) => i !== fold).flat().sort();
  }
  if (fold !== undefined) throw new SegvolError('ERR_ARGUMENT', `split: the split is a fixed train/test hold-out with no folds; drop the fold (received ${fold})`);
  return [...(part === 'test' ? split.test! : split.train!)];
}

/**
 * The BRATS cases of one part of a split file, found under its root (resolved from the
 * file's folder); every named case must be there.
 */
export function splitBratsFiles(file: string, part: 'train' | 'test', fold?: number): BratsCaseFiles[] {
  const split = readCaseSplit(file);
  const root = path.resolve(path.dirname(path.resolve(file)), split.root);
  const wanted = splitPart(split, part, fold);
  const byKey = new Map(findBratsCases(root).map((c) => [caseKey(root, c.folder), c]));
  const missing = wanted.filter((w) => !byKey.has(w));
  if (missing.length) {
    throw new SegvolError('ERR_ARGUMENT', `split ${file}: ${missing.length} case${missing.length > 1 ? 's' : ''} not found under ${root}: ` +
      `${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}; the split was made from another folder`);
  }
  return wanted.map((w) => byKey.get(w)!);
}
