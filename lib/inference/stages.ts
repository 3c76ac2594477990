// Block-wise work in stages, resumable and shared by processes. A stage is a list of blocks
// (0..blocks-1), each computed by a function that writes the block's output whole and is
// then marked done by a file in the stage's marker folder (the file may carry a small JSON
// result, e.g. a block's fragment count). A killed run leaves whole outputs and markers
// only for finished blocks, so a resumed run skips them and redoes the rest. Several
// processes (array jobs) share the blocks of every stage: part i of n takes the blocks
// b with b % n === i; before a stage, a process waits until every block of the stage before
// is marked done, by whichever process (polling the markers), so stages run in order across
// processes too. A stage of one block is a global step (part 0 takes it). Generic: any
// block-wise pipeline (affinity agglomeration, slabs propagated in sequence) can run on it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { writeAtomic } from '../io/zarr';

export interface BlockStage {
  /** Names the stage in progress and errors. */
  name: string;
  /** Blocks of this stage: ids 0..blocks-1. */
  blocks: number;
  /** The folder of the stage's done markers (one file per block, named by its number). */
  markers: string;
  /** Computes a block and writes its output whole; a JSON-able result is kept in its marker (readBlockResult). */
  run(block: number): Promise<unknown>;
}

/** Array jobs: the i-th of n processes (from 0) takes the blocks b with b % n === i. */
export interface BlockPart {
  index: number;
  count: number;
}

export interface StageRunOptions {
  /** This process's share: { index, count } or 'i/n' (default all blocks). */
  part?: BlockPart | string;
  /** Skip blocks already marked done (default true); false recomputes this part's blocks. */
  resume?: boolean;
  /** Stops between blocks (and while waiting for other parts); the run returns with stopped set. */
  signal?: AbortSignal;
  /** After each of this part's blocks of a stage: done (computed or skipped) of total. */
  onProgress?: (stage: string, done: number, total: number) => void;
  /** While waiting for other parts to finish a stage: its blocks marked done, of total. */
  onWait?: (stage: string, done: number, total: number) => void;
  /** How often markers are polled while waiting (default 500 ms). */
  pollMs?: number;
}

export interface StageReport {
  name: string;
  blocks: number;
  /** This part's blocks computed now, and skipped as already done. */
  computed: number;
  skipped: number;
}

const markerFile = (markers: string, block: number) => path.join(markers, String(block));

/** Whether a block is marked done. */
export function blockMarked(markers: string, block: number): boolean {
  return fs.existsSync(markerFile(markers, block));
}

/** Marks a block done (atomically), keeping a JSON-able result with it (undefined: an empty marker). */
export function markBlock(markers: string, block: number, result?: unknown): void {
  fs.mkdirSync(markers, { recursive: true });
  writeAtomic(markerFile(markers, block), result === undefined ? '' : JSON.stringify(result));
}

/** The result kept with a done block (undefined if none, or not done). */
export function readBlockResult<T>(markers: string, block: number): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(markerFile(markers, block), 'utf8');
  } catch {
    return undefined;
  }
  return text === '' ? undefined : JSON.parse(text) as T;
}

/** Blocks of a stage marked done. */
export function countMarked(stage: Pick<BlockStage, 'markers' | 'blocks'>): number {
  let n = 0;
  for (let b = 0; b < stage.blocks; ++b) if (blockMarked(stage.markers, b)) ++n;
  return n;
}

/** Checks a part i/n; "i/n" text (a command line's --block) is parsed. */
export function blockPart(value: BlockPart | string | undefined, where: string): BlockPart {
  if (value === undefined) return { index: 0, count: 1 };
  let part = value;
  if (typeof value === 'string') {
    const m = /^(\d+)\/(\d+)$/.exec(value.trim());
    if (!m) throw new SegvolError('ERR_ARGUMENT', `${where}: expected a part i/n (the i-th of n block sets, from 0), received ${describe(value)}`);
    part = { index: Number(m[1]), count: Number(m[2]) };
  }
  const { index, count } = part as BlockPart;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected a part i/n with 0 <= i < n, received ${index}/${count}`);
  }
  return { index, count };
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs the stages in order: this part's blocks of each (skipping those marked done unless
 * resume is false), waiting before a stage until the stage before is done by every part.
 * Returns per stage what this process did; stopped when the signal ended it early.
 */
export async function runStages(stages: readonly BlockStage[], options: StageRunOptions = {}): Promise<{ stages: StageReport[]; stopped: boolean }> {
  const part = blockPart(options.part, 'stages');
  const resume = options.resume ?? true;
  const reports: StageReport[] = [];
  for (const [s, stage] of stages.entries()) {
    if (!Number.isInteger(stage.blocks) || stage.blocks < 1) throw new SegvolError('ERR_ARGUMENT', `stage ${stage.name}: expected a positive block count, received ${describe(stage.blocks)}`);
    const mine = Array.from({ length: stage.blocks }, (_, b) => b).filter((b) => b % part.count === part.index);
    const report: StageReport = { name: stage.name, blocks: stage.blocks, computed: 0, skipped: 0 };
    reports.push(report);
    if (mine.length === 0) continue;
    // The stage before must be done by every part: its outputs are this stage's inputs.
    const before = stages[s - 1];
    while (before) {
      const done = countMarked(before);
      if (done === before.blocks) break;
      if (options.signal?.aborted) return { stages: reports, stopped: true };
      options.onWait?.(before.name, done, before.blocks);
      await pause(options.pollMs ?? 500, options.signal);
    }
    for (const b of mine) {
      if (options.signal?.aborted) return { stages: reports, stopped: true };
      if (resume && blockMarked(stage.markers, b)) {
        ++report.skipped;
      } else {
        markBlock(stage.markers, b, await stage.run(b));
        ++report.computed;
      }
      options.onProgress?.(stage.name, report.computed + report.skipped, mine.length);
    }
  }
  return { stages: reports, stopped: false };
}
