// The JSON-lines training log: one line per step and one per validation score,
// appended as the fit goes (segvol plot draws it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ValidationMetric } from './validation';

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

export class TrainingLog {
  constructor(readonly file: string) {}

  step(line: StepLine): void {
    this.append({ ...line, voxelsPerSecond: Math.round(line.voxelsPerSecond), time: new Date().toISOString() });
  }

  validation(line: ValidationLine): void {
    this.append(line);
  }

  private append(entry: object): void {
    fs.appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
  }
}
