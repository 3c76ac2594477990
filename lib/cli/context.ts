// What every command shares: the context families print and report progress
// through, the option parsers, and the options families add to a command.
import type { Precision } from '../training/options';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backends } from '../core/backends';
import { nonFinitePolicies, type NonFinitePolicy } from '../core/non_finite';
import type { Device } from '../core/tensor';
import { parseIntegerList } from '../core/validate';
import { normalizations, type Normalization } from '../data/preprocess';
import type { FlipAxis, Tta } from '../inference/windows';
import type { RawOptions } from '../io/volume_io';
import type { CliContext, CliOption } from '../models/family';
import { duration, progressReporter } from './progress';

/** The terminal side of a command: results on stdout, notes and progress on stderr. */
export const terminal: CliContext = {
  progress: (label) => progressReporter(label),
  print: (line) => console.log(line),
  note: (line) => console.error(line),
  duration,
};

export function integerList(value: string): number[] {
  try {
    return parseIntegerList(value, 'expected comma-separated positive integers');
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.replace(/^segvol: /, ''));
  }
}

export const positiveIntegerOption = (v: string): number => integerList(v)[0]!;

/** --device: 'cpu' or 'cuda', checked against this build before any work starts. */
/** --precision: the Trainer's convolution math (whether the machine can compute it is checked when training starts). */
export function precisionOption(value: string): Precision {
  if (value !== 'fp32' && value !== 'bf16' && value !== 'tf32' && value !== 'fp16') {
    throw new InvalidArgumentError(`expected fp32, bf16, tf32 or fp16, received ${value}`);
  }
  return value;
}

export function deviceOption(value: string): Device {
  if (value !== 'cpu' && value !== 'cuda') throw new InvalidArgumentError(`expected cpu or cuda, received ${value}`);
  const status = backends().find((b) => b.name === value);
  if (!status?.available) {
    throw new InvalidArgumentError(`${value} is unavailable in this build (${status?.reason ?? 'unknown backend'}); use --device cpu`);
  }
  return value;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

/** Seconds, 0 or more (0 usually means "never" or "forever", as the option says). */
export function nonNegativeSeconds(value: string): number {
  const n = Number(value);
  if (!(value.trim() !== '' && n >= 0 && Number.isFinite(n))) throw new InvalidArgumentError(`expected seconds (0 or more), got '${value}'`);
  return n;
}

export function normalizeOption(value: string): Normalization {
  if (!normalizations.includes(value as Normalization)) throw new InvalidArgumentError(`expected ${normalizations.join(', ')}, received ${value}`);
  return value as Normalization;
}

/** --overlap: one fraction for every axis, or d,h,w. */
export function overlapOption(value: string): number | [number, number, number] {
  const parts = value.split(',').map((v) => Number(v.trim()));
  if ((parts.length !== 1 && parts.length !== 3) || parts.some((o) => !(o >= 0 && o < 1))) {
    throw new InvalidArgumentError(`expected a fraction 0 <= o < 1, or three of them (d,h,w), received ${value}`);
  }
  return parts.length === 1 ? parts[0]! : parts as [number, number, number];
}

/** --tta: none, mirror (all 8 flips of z, y, x), or the axes whose flips are combined (x,y). */
export function ttaOption(value: string): Tta {
  if (value === 'none' || value === 'mirror') return value;
  const axes = value.split(',').map((v) => v.trim());
  if (axes.some((a) => !['z', 'y', 'x'].includes(a)) || new Set(axes).size !== axes.length) {
    throw new InvalidArgumentError(`expected none, mirror, or distinct axes among z,y,x (e.g. x,y), received ${value}`);
  }
  return { flips: axes as FlipAxis[] };
}

/** --non-finite: error or zero. */
export function nonFiniteOption(value: string): NonFinitePolicy {
  if (!nonFinitePolicies.includes(value as NonFinitePolicy)) throw new InvalidArgumentError(`expected error or zero, received ${value}`);
  return value as NonFinitePolicy;
}

/** --raw shape:dtype, e.g. 30,512,512:uint16. */
export function rawOption(value: string): RawOptions {
  const [shape, dtype] = value.split(':');
  return { shape: integerList(shape ?? ''), dtype: (dtype ?? 'float32') as RawOptions['dtype'] };
}

/** Adds the options a family gives a command. */
export function addOptions(command: Command, options: readonly CliOption[]): void {
  for (const o of options) {
    const option = new Option(o.flags, o.description);
    if (o.parse) {
      const parse = o.parse;
      option.argParser((value: string) => {
        try {
          return parse(value);
        } catch (error) {
          throw new InvalidArgumentError((error as Error).message.replace(/^segvol: /, ''));
        }
      });
    }
    if (o.default !== undefined) option.default(o.default);
    command.addOption(option);
  }
}

/** The camel-case key commander gives an option's value: '--in-channels <n>' -> inChannels. */
export function optionKey(flags: string): string {
  const long = /--([\w-]+)/.exec(flags)![1]!;
  return long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}
