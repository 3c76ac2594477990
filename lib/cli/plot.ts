// `segvol plot`: a training log (JSON lines) drawn as a PNG: the loss (log axis: every
// step faint, a running mean bold), the learning rate (log axis) and, where present,
// the validation scores (points, the best ringed and labelled), against the step, with
// the phase boundaries as dashed vertical lines named at the top.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { Canvas, ink, type Rgb } from '../io/canvas';
import { readTrainingLog, type LogEntry } from '../training/log';
import { glyphHeight, textWidth } from '../io/font';
import { drawLegend, fontScale, Frame, legendSize, linearAxis, logAxis, placeLabel, type Axis } from './chart';

export const plotColours = {
  loss: [31, 90, 180] as Rgb, lossRaw: [160, 190, 232] as Rgb, lr: [205, 110, 20] as Rgb,
  validation: [30, 140, 60] as Rgb, phase: [150, 60, 170] as Rgb,
};

/** The mean of the last `window` values at each index. */
function runningMean(values: readonly number[], window: number): number[] {
  let sum = 0;
  return values.map((v, i) => {
    sum += v;
    if (i >= window) sum -= values[i - window]!;
    return sum / Math.min(i + 1, window);
  });
}

/** The log's steps, learning rates, validations and phases drawn as one PNG. */
export function drawLog(entries: readonly LogEntry[], title: string, width = 900): Buffer {
  const steps = entries.filter((e) => typeof e.step === 'number' && typeof e.loss === 'number');
  const validations = entries.filter((e) => typeof e.step === 'number' && typeof e.validation === 'number');
  const th = glyphHeight * fontScale;
  const x = linearAxis(steps.map((e) => e.step!), { margin: 0.01, target: 8 });
  const losses = steps.map((e) => e.loss!), positive = losses.filter((v) => v > 0);
  // The loss on a log axis when every loss is positive (a loss can be negative: then linear).
  const lossAxis: Axis = positive.length === losses.length ? logAxis(losses) : linearAxis(losses);
  const lrs = steps.filter((e) => typeof e.lr === 'number' && e.lr > 0).map((e) => [e.step!, e.lr!] as const);
  const lrAxis = logAxis(lrs.map((p) => p[1]));
  const panels: Array<{ axis: Axis; height: number; title: string }> = [
    { axis: lossAxis, height: 270, title: lossAxis.log ? 'loss (log scale)' : 'loss' },
    { axis: lrAxis, height: 165, title: 'learning rate' },
  ];
  const metric = validations[0]?.metric ?? '';
  const vAxis = validations.length ? linearAxis(validations.map((e) => e.validation!), { margin: 0.12, target: 4 }) : undefined;
  if (vAxis) panels.push({ axis: vAxis, height: 170, title: `validation ${metric}`.trim() });
  const widest = Math.max(...panels.flatMap((p) => p.axis.ticks.map((v) => textWidth(p.axis.format(v), fontScale))));
  const left = 16 + th + 12 + widest + 14, right = 24, top = 20 + th + 16 + th + 14, gap = 22, bottom = 9 + th + 10 + th + 18;
  const height = top + panels.reduce((n, p) => n + p.height, 0) + gap * (panels.length - 1) + bottom;
  const canvas = new Canvas(width, height);
  canvas.text(left, 20, title, ink, fontScale);

  // Phase boundaries: where the phase number changes.
  const phases: Array<{ step: number; label: string }> = [];
  steps.forEach((e, i) => {
    if (i === 0 || e.phase !== steps[i - 1]!.phase) {
      const name = e.phaseName && e.phaseName !== `phase ${e.phase}` ? `: ${e.phaseName}` : '';
      phases.push({ step: i === 0 ? e.step! : (steps[i - 1]!.step! + e.step!) / 2, label: e.phase !== undefined ? `phase ${e.phase}${name}` : '' });
    }
  });

  let y0 = top;
  const frames = panels.map((p, k) => {
    const frame = new Frame(canvas, { x: left, y: y0, w: width - left - right, h: p.height }, x, p.axis);
    frame.draw({ xLabels: k === panels.length - 1 });
    frame.titles(k === panels.length - 1 ? 'step' : undefined, p.title);
    y0 += p.height + gap;
    return frame;
  });
  const first = frames[0]!, last = frames[frames.length - 1]!;
  // Phase lines through every panel, named above the first.
  if (phases.length > 1) {
    let lastRight = -Infinity;
    for (const [k, ph] of phases.entries()) {
      const px = Math.round(first.px(ph.step));
      if (k > 0) canvas.line(px, first.box.y - 4, px, last.box.y + last.box.h - 1, plotColours.phase, 2, [6, 4]);
      const s = ph.label, w = textWidth(s, fontScale);
      const lx = Math.min(width - right - w, k === 0 ? first.box.x : px + 6);
      if (lx < lastRight + 8) continue;
      canvas.text(lx, first.box.y - th - 8, s, plotColours.phase, fontScale);
      lastRight = lx + w;
    }
  }

  // Loss: every step faint, the running mean bold.
  const lossFrame = frames[0]!;
  const window = Math.max(1, Math.round(steps.length / 40));
  const mean = runningMean(losses, window);
  const toPx = (f: Frame, pts: ReadonlyArray<readonly [number, number]>) => pts.filter((p) => !f.y.log || p[1] > 0).map((p) => [f.px(p[0]), f.py(p[1])] as [number, number]);
  canvas.polyline(toPx(lossFrame, steps.map((e) => [e.step!, e.loss!])), plotColours.lossRaw, 1);
  if (steps.length === 1) canvas.marker(lossFrame.px(steps[0]!.step!), lossFrame.py(losses[0]!), 'circle', plotColours.loss, 4);
  canvas.polyline(toPx(lossFrame, steps.map((e, i) => [e.step!, mean[i]!])), plotColours.loss, 3);
  const lossEntries = [
    { text: 'loss of each step', draw: (lx: number, ly: number) => canvas.line(lx - 18, ly, lx + 18, ly, plotColours.lossRaw, 2) },
    { text: `running mean of ${window} step${window > 1 ? 's' : ''}`, draw: (lx: number, ly: number) => canvas.line(lx - 18, ly, lx + 18, ly, plotColours.loss, 3) },
  ];
  const ls = legendSize(lossEntries), lb = lossFrame.box;
  drawLegend(canvas, lb.x + lb.w - ls.w - 10, lb.y + 10, lossEntries);

  // Learning rate.
  const lrFrame = frames[1]!;
  canvas.polyline(toPx(lrFrame, lrs), plotColours.lr, 2);
  if (lrs.length === 1) canvas.marker(lrFrame.px(lrs[0]![0]), lrFrame.py(lrs[0]![1]), 'circle', plotColours.lr, 4);

  // Validation: the scores as points, the best ringed and labelled.
  if (vAxis) {
    const vFrame = frames[2]!;
    const pts = toPx(vFrame, validations.map((e) => [e.step!, e.validation!]));
    canvas.polyline(pts, plotColours.validation, 2);
    for (const [px, py] of pts) canvas.marker(px, py, 'circle', plotColours.validation, 4);
    const lastLine = validations[validations.length - 1]!;
    const higher = metric !== 'loss';
    const best = typeof lastLine.best === 'number' && typeof lastLine.bestStep === 'number'
      ? { step: lastLine.bestStep, value: lastLine.best }
      : validations.reduce<{ step: number; value: number }>((b, e) => ((higher ? e.validation! > b.value : e.validation! < b.value) ? { step: e.step!, value: e.validation! } : b),
        { step: validations[0]!.step!, value: validations[0]!.validation! });
    const bx = vFrame.px(best.step), by = vFrame.py(best.value);
    canvas.ring(bx, by, 8, plotColours.validation, 2);
    const s = `best ${Number(best.value.toPrecision(4))} at step ${best.step}`;
    const box = placeLabel(bx, by, textWidth(s, fontScale) + 8, th + 8, vFrame.box, pts, []);
    canvas.fillRect(box.x, box.y, box.w, box.h, [255, 255, 255]);
    canvas.rect(box.x, box.y, box.w, box.h, plotColours.validation);
    canvas.text(box.x + 4, box.y + 4, s, plotColours.validation, fontScale);
  }
  return canvas.png();
}

/** Reads a training log and draws loss, learning rate and validation (if any) against the step. */
export function plotLog(logFile: string, outFile: string): { steps: number; validations: number } {
  let entries: LogEntry[];
  try {
    entries = readTrainingLog(logFile);
  } catch (error) {
    if (error instanceof SegvolError) throw new SegvolError(error.code, `plot: ${error.message}`);
    throw error;
  }
  const steps = entries.filter((e) => typeof e.step === 'number' && typeof e.loss === 'number');
  if (steps.length === 0) throw new SegvolError('ERR_FORMAT', `plot: ${logFile} holds no training steps (lines with step and loss)`);
  const validations = entries.filter((e) => typeof e.step === 'number' && typeof e.validation === 'number');
  const phases = new Set(steps.map((e) => e.phase)).size;
  const title = `${path.basename(logFile)}: ${steps.length} steps${phases > 1 ? `, ${phases} phases` : ''}` +
    `${validations.length ? `, ${validations.length} validations` : ''}`;
  fs.writeFileSync(outFile, drawLog(entries, title));
  return { steps: steps.length, validations: validations.length };
}
