// The JSON-lines training log: one line per step and one per validation score,
// appended as the fit goes. One parser reads it for `segvol plot` and for the viewer,
// which follows the file as it grows (LogTail).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { drawSlicePanels } from '../io/panels';
import { writeAtomic } from '../io/zarr';
import type { ValidationMetric, ValidationSlice } from './validation';

/** A path without its extension ('model.safetensors' -> 'model'). */
export function withoutExtension(file: string): string {
  return file.slice(0, file.length - path.extname(file).length);
}

export interface StepLine {
  step: number;
  phase: number;
  /** The phase's name (its own, or 'phase <n>'). */
  phaseName?: string;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  batchSize: number;
  voxelsPerSecond: number;
}

export interface ValidationLine {
  step: number;
  phase: number;
  validation: number;
  metric: ValidationMetric;
  best: number;
  bestStep: number;
}

/** Where a log's latest validation picture is written: model.log.jsonl -> model.validation.png. */
export function validationSlicePath(logFile: string): string {
  return `${logFile.replace(/\.log\.jsonl$/, '')}.validation.png`;
}

export class TrainingLog {
  constructor(readonly file: string) {}

  step(line: StepLine): void {
    this.append({ ...line, voxelsPerSecond: Math.round(line.voxelsPerSecond), time: new Date().toISOString() });
  }

  /**
   * A validation score; with a slice, the picture input | truth | prediction is written beside
   * the log as <stem>.validation.png (replaced atomically: a viewer never reads half of it).
   */
  validation(line: ValidationLine, slice?: ValidationSlice, classes?: readonly string[]): void {
    if (!slice) return this.append(line);
    const file = validationSlicePath(this.file);
    const { height: h, width: w } = slice;
    const range = (a: Float32Array) => {
      let lo = Infinity, hi = -Infinity;
      for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      return { lo, hi };
    };
    const png = drawSlicePanels([
      { title: 'input', kind: 'grey', data: slice.input, ...range(slice.input) },
      { title: 'truth', kind: 'labels', data: slice.truth },
      slice.predictionKind === 'labels' ? { title: 'prediction', kind: 'labels', data: slice.prediction }
        : { title: 'prediction (output 0)', kind: 'grey', data: slice.prediction, ...range(slice.prediction) },
    ], w, h, { caption: `validation at step ${line.step}: ${line.metric} ${Number(line.validation.toPrecision(4))}`, ...(classes ? { classes } : {}) });
    writeAtomic(file, png);
    this.append({ ...line, slice: path.basename(file) });
  }

  private append(entry: object): void {
    fs.appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
  }
}

/** One line of a training log as read back: a step, a validation, or both absent (ignored). */
export interface LogEntry {
  step?: number;
  phase?: number;
  phaseName?: string;
  loss?: number;
  lr?: number;
  validation?: number;
  metric?: string;
  best?: number;
  bestStep?: number;
  /** The validation slice (input | truth | prediction) written beside the log at this validation. */
  slice?: string;
}

/** One line of the log, or why it is not one (not JSON, or JSON that is not an object). */
function parseLine(line: string, source: string, number: number): LogEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return `${source} line ${number} is not JSON; expected a training log written by segvol train`;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as LogEntry
    : `${source} line ${number} is not an object; expected a training log written by segvol train`;
}

/** Parses complete log lines; `firstLine` numbers them in errors. */
export function parseTrainingLog(text: string, source: string, firstLine = 1): LogEntry[] {
  const entries: LogEntry[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const entry = parseLine(line, source, firstLine + i);
    if (typeof entry === 'string') throw new SegvolError('ERR_FORMAT', entry);
    entries.push(entry);
  });
  return entries;
}

/** Reads a whole training log. */
export function readTrainingLog(file: string): LogEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `cannot read ${file}: ${(error as Error).message}`);
  }
  return parseTrainingLog(text, file);
}

/**
 * Follows a training log as it grows. Each poll returns the lines completed since the last
 * one (a line still being written waits for its newline, kept as bytes so that a character
 * split between reads survives); when the file shrank or was replaced (a new run from step 0
 * starts a new log) it starts over with `reset` set. A line that is not a log entry (a torn
 * line of a killed run) is skipped and named in `errors`; the lines around it still count.
 */
export class LogTail {
  private offset = 0;
  private lineNumber = 1;
  private partial: Buffer = Buffer.alloc(0);
  private identity: string | undefined;

  constructor(readonly file: string) {}

  poll(): { entries: LogEntry[]; reset: boolean; errors: string[] } {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(this.file);
    } catch {
      const reset = this.identity !== undefined;
      this.restart(undefined);
      return { entries: [], reset, errors: [] };
    }
    const identity = `${stat.dev}:${stat.ino}`;
    const reset = this.identity !== undefined && (identity !== this.identity || stat.size < this.offset);
    if (reset || this.identity === undefined) this.restart(identity);
    if (stat.size === this.offset) return { entries: [], reset, errors: [] };
    const fd = fs.openSync(this.file, 'r');
    let bytes: Buffer;
    try {
      const fresh = Buffer.alloc(stat.size - this.offset);
      const got = fs.readSync(fd, fresh, 0, fresh.length, this.offset);
      this.offset += got;
      bytes = Buffer.concat([this.partial, fresh.subarray(0, got)]);
    } finally {
      fs.closeSync(fd);
    }
    const end = bytes.lastIndexOf(0x0a);
    this.partial = Buffer.from(bytes.subarray(end + 1));
    const entries: LogEntry[] = [], errors: string[] = [];
    for (const line of bytes.subarray(0, end + 1).toString('utf8').split('\n').slice(0, -1)) {
      const number = this.lineNumber++;
      if (line.trim() === '') continue;
      const entry = parseLine(line, this.file, number);
      if (typeof entry === 'string') errors.push(entry);
      else entries.push(entry);
    }
    return { entries, reset, errors };
  }

  private restart(identity: string | undefined): void {
    this.identity = identity;
    this.offset = 0;
    this.lineNumber = 1;
    this.partial = Buffer.alloc(0);
  }
}
