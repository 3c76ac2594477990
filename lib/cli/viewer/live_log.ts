// A training log followed as it grows, for the viewer's Training tab: the same parser and
// the same chart as `segvol plot` (one source of data), pushed to the page as Server-Sent
// Events when lines are appended, and the latest validation slice the trainer wrote
// beside the log. The file is polled (fs.watchFile): portable, and a training run appends
// a few lines a second at most.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServerResponse } from 'node:http';
import { LogTail, validationSlicePath, type LogEntry } from '../../training/log';
import { drawLog } from '../plot';

export interface LogSummary {
  version: number;
  steps: number;
  validations: number;
  lastStep: number | null;
  lastLoss: number | null;
  lastLr: number | null;
  metric: string | null;
  best: { value: number; step: number } | null;
  /** The step of the validation slice to show, when the trainer wrote one. */
  sliceStep: number | null;
  error: string | null;
}

export class LiveLog {
  private readonly tail: LogTail;
  private entries: LogEntry[] = [];
  private version = 0;
  private error: string | null = null;
  private readonly clients = new Set<ServerResponse>();
  private chart: { version: number; png: Buffer } | undefined;
  private readonly listener = () => this.poll();

  constructor(readonly file: string, readonly intervalMs = 500) {
    this.tail = new LogTail(file);
    this.poll();
    fs.watchFile(file, { interval: intervalMs }, this.listener);
  }

  /** Where the trainer writes its validation slice: beside the log, computed here, never from a URL. */
  get slicePath(): string {
    return validationSlicePath(this.file);
  }

  poll(): void {
    let update: ReturnType<LogTail['poll']>;
    try {
      update = this.tail.poll();
    } catch (error) {
      // The file could not be read (permissions, a disk error): said on the page, tried again.
      update = { entries: [], reset: false, errors: [(error as Error).message] };
    }
    if (!update.reset && update.entries.length === 0 && update.errors.length === 0) return;
    if (update.reset) {
      this.entries = [];
      this.error = null;
    }
    // Not push(...entries): a log of a few hundred thousand steps would overflow the stack.
    for (const e of update.entries) this.entries.push(e);
    // A torn line is named on the page until the next run starts; the lines after it count.
    if (update.errors.length) this.error = update.errors[update.errors.length - 1]!;
    this.version += 1;
    this.broadcast();
  }

  summary(): LogSummary {
    const steps = this.entries.filter((e) => typeof e.step === 'number' && typeof e.loss === 'number');
    const validations = this.entries.filter((e) => typeof e.step === 'number' && typeof e.validation === 'number');
    const last = steps[steps.length - 1], lastValidation = validations[validations.length - 1];
    const withSlice = validations.filter((e) => typeof e.slice === 'string');
    return {
      version: this.version, steps: steps.length, validations: validations.length,
      lastStep: last?.step ?? null, lastLoss: last?.loss ?? null, lastLr: last?.lr ?? null,
      metric: lastValidation?.metric ?? null,
      best: lastValidation && typeof lastValidation.best === 'number' ? { value: lastValidation.best, step: lastValidation.bestStep ?? lastValidation.step! } : null,
      sliceStep: withSlice.length && fs.existsSync(this.slicePath) ? withSlice[withSlice.length - 1]!.step! : null,
      error: this.error,
    };
  }

  /** The loss / learning-rate / validation chart of `segvol plot`, drawn once per log version. */
  chartPng(): Buffer | undefined {
    if (!this.entries.some((e) => typeof e.step === 'number' && typeof e.loss === 'number')) return undefined;
    if (this.chart?.version !== this.version) {
      const steps = this.entries.filter((e) => typeof e.loss === 'number').length;
      this.chart = { version: this.version, png: drawLog(this.entries, `${path.basename(this.file)}: ${steps} steps`) };
    }
    return this.chart.png;
  }

  subscribe(response: ServerResponse): void {
    response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    response.write(`event: summary\ndata: ${JSON.stringify(this.summary())}\n\n`);
    this.clients.add(response);
    response.on('close', () => this.clients.delete(response));
  }

  private broadcast(): void {
    const message = `event: summary\ndata: ${JSON.stringify(this.summary())}\n\n`;
    for (const client of this.clients) client.write(message);
  }

  close(): void {
    fs.unwatchFile(this.file, this.listener);
    for (const client of this.clients) client.end();
    this.clients.clear();
  }
}
