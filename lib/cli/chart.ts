// Axes for the PNG plots (segvol plot, segvol evaluate --plot): ranges fitted to the
// data with a small margin, nice tick values (1, 2, 5 x 10^k), log axes with labelled
// decades, grid lines, tick labels and axis titles, and label placement that avoids
// the data and other labels.
import { Canvas, ink, type Rgb } from '../io/canvas';
import { glyphHeight, textWidth } from '../io/font';

export const fontScale = 2;
export const gridColour: Rgb = [228, 228, 228], decadeColour: Rgb = [200, 200, 200], minorGridColour: Rgb = [243, 243, 243], frameColour: Rgb = [120, 120, 120];

export interface Axis {
  lo: number;
  hi: number;
  log: boolean;
  /** Labelled ticks, and unlabelled ones (light grid lines). */
  ticks: number[];
  minor: number[];
  format(v: number): string;
}

/** A step of 1, 2 or 5 x 10^k near range / target. */
function niceStep(range: number, target: number): number {
  const raw = range / target, k = Math.floor(Math.log10(raw)), base = 10 ** k, m = raw / base;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * base;
}

/** A linear axis over the values with `margin` (a fraction of their range) on each side, about `target` ticks. */
export function linearAxis(values: readonly number[], options: { margin?: number; target?: number; max?: number; min?: number } = {}): Axis {
  const finite = values.filter(Number.isFinite);
  // Loops, not Math.min(...values): a log of a few hundred thousand steps would overflow the stack.
  let lo = finite.length ? finite.reduce((a, b) => Math.min(a, b)) : 0, hi = finite.length ? finite.reduce((a, b) => Math.max(a, b)) : 1;
  if (!(hi > lo)) {
    const pad = Math.max(Math.abs(lo) * 0.05, 1e-3);
    lo -= pad;
    hi += pad;
  }
  const margin = (options.margin ?? 0.06) * (hi - lo);
  lo -= margin;
  hi += margin;
  if (options.max !== undefined) hi = Math.min(hi, options.max);
  if (options.min !== undefined) lo = Math.max(lo, options.min);
  const step = niceStep(hi - lo, options.target ?? 6);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) + (Math.abs(mantissa - 2.5) < 1e-9 ? 1 : 0);
  const big = Math.max(Math.abs(lo), Math.abs(hi)) >= 1e6;
  return { lo, hi, log: false, ticks, minor: [], format: (v) => (big ? v.toExponential(1) : v.toFixed(decimals)) };
}

/** 0.01, 0.5, 2, 1e-5: plain where short, else exponent form. */
export function formatLogValue(v: number): string {
  if (v >= 1e-3 && v < 1e5) return Number(v.toPrecision(2)).toString();
  return v.toExponential(0).replace('e+', 'e');
}

/** A log axis over the positive values: decades labelled, 2..9 x 10^k as minor grid lines (labelled 2 and 5 too where the range is short). */
export function logAxis(values: readonly number[], options: { margin?: number } = {}): Axis {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  let lo = positive.length ? Math.log10(positive.reduce((a, b) => Math.min(a, b))) : -1, hi = positive.length ? Math.log10(positive.reduce((a, b) => Math.max(a, b))) : 0;
  if (hi - lo < 0.2) {
    const mid = (lo + hi) / 2;
    lo = mid - 0.1;
    hi = mid + 0.1;
  }
  const margin = (options.margin ?? 0.06) * (hi - lo);
  lo -= margin;
  hi += margin;
  const inRange = (v: number) => Math.log10(v) >= lo - 1e-9 && Math.log10(v) <= hi + 1e-9;
  const all: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); ++k) for (let m = 1; m <= 9; ++m) all.push(Number((m * 10 ** k).toPrecision(6)));
  const pick = (ms: number[]) => all.filter((v) => inRange(v) && ms.includes(Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9))));
  // Decades; over less than three of them 2 and 5 x 10^k too; over less than one, every digit.
  let ticks = hi - lo >= 3 ? pick([1]) : pick([1, 2, 5]);
  if (ticks.length < 3) ticks = pick([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const minor = all.filter((v) => inRange(v) && !ticks.includes(v));
  return { lo: 10 ** lo, hi: 10 ** hi, log: true, ticks, minor, format: formatLogValue };
}

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A plot area on a canvas: maps data to pixels and draws its frame, grid, ticks and titles. */
export class Frame {
  constructor(readonly canvas: Canvas, readonly box: Box, readonly x: Axis, readonly y: Axis) {}

  private t(axis: Axis, v: number): number {
    return axis.log ? (Math.log10(v) - Math.log10(axis.lo)) / (Math.log10(axis.hi) - Math.log10(axis.lo)) : (v - axis.lo) / (axis.hi - axis.lo);
  }

  px(v: number): number {
    return this.box.x + this.t(this.x, v) * (this.box.w - 1);
  }

  py(v: number): number {
    return this.box.y + (1 - this.t(this.y, v)) * (this.box.h - 1);
  }

  inside(px: number, py: number): boolean {
    return px >= this.box.x && px < this.box.x + this.box.w && py >= this.box.y && py < this.box.y + this.box.h;
  }

  /** Grid lines and the frame; tick labels on the left, and at the bottom unless `xLabels` is false. */
  draw(options: { xLabels?: boolean } = {}): void {
    const { canvas, box } = this;
    canvas.fillRect(box.x, box.y, box.w, box.h, [255, 255, 255]);
    for (const v of this.y.minor) canvas.line(box.x, this.py(v), box.x + box.w - 1, this.py(v), minorGridColour);
    for (const v of this.x.minor) canvas.line(this.px(v), box.y, this.px(v), box.y + box.h - 1, minorGridColour);
    for (const v of this.y.ticks) canvas.line(box.x, this.py(v), box.x + box.w - 1, this.py(v), gridColour);
    for (const v of this.x.ticks) canvas.line(this.px(v), box.y, this.px(v), box.y + box.h - 1, gridColour);
    canvas.rect(box.x - 1, box.y - 1, box.w + 2, box.h + 2, frameColour);
    const th = glyphHeight * fontScale;
    // Decades of a log axis darker.
    if (this.y.log) for (const v of [...this.y.ticks, ...this.y.minor]) if (Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9) canvas.line(box.x, this.py(v), box.x + box.w - 1, this.py(v), decadeColour);
    // Labels that would overlap are left out, decades of a log axis last.
    const decade = (v: number) => this.y.log && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
    const drawn: number[] = [];
    for (const v of [...this.y.ticks].sort((a, b) => Number(decade(b)) - Number(decade(a)))) {
      const y = Math.round(this.py(v));
      canvas.line(box.x - 6, y, box.x - 2, y, frameColour);
      if (drawn.some((d) => Math.abs(d - y) < th + 6)) continue;
      const s = this.y.format(v);
      canvas.text(box.x - 10 - textWidth(s, fontScale), y - th / 2, s, ink, fontScale);
      drawn.push(y);
    }
    if (options.xLabels === false) return;
    let lastRight = -Infinity;
    for (const v of this.x.ticks) {
      const x = Math.round(this.px(v));
      canvas.line(x, box.y + box.h, x, box.y + box.h + 4, frameColour);
      const s = this.x.format(v), w = textWidth(s, fontScale);
      const left = Math.min(canvas.width - w - 2, Math.max(2, x - w / 2));
      if (left < lastRight + 10) continue;  // no overlapping labels
      canvas.text(left, box.y + box.h + 9, s, ink, fontScale);
      lastRight = left + w;
    }
  }

  /** The x axis title under the tick labels, the y axis title turned up left of them. */
  titles(x: string | undefined, y: string | undefined, yOffset = 0): void {
    const { canvas, box } = this, th = glyphHeight * fontScale;
    if (x) canvas.textCentred(box.x + box.w / 2, box.y + box.h + 9 + th + 10, x, ink, fontScale);
    if (y) {
      const widest = Math.max(...this.y.ticks.map((v) => textWidth(this.y.format(v), fontScale)), 0);
      canvas.textUp(box.x - 10 - widest - 12 - th - yOffset, box.y + box.h / 2 - textWidth(y, fontScale) / 2, y, ink, fontScale);
    }
  }
}

/**
 * Where to put a box of size w x h near (x, y) inside `area`: the candidate position that
 * covers the fewest of `avoid` (points) and overlaps no box in `taken`.
 */
export function placeLabel(x: number, y: number, w: number, h: number, area: Box, avoid: ReadonlyArray<readonly [number, number]>, taken: readonly Box[]): Box {
  const gap = 10;
  const candidates: Box[] = [
    { x: x - w - gap, y: y + gap, w, h }, { x: x - w - gap, y: y - h - gap, w, h }, { x: x + gap, y: y + gap, w, h }, { x: x + gap, y: y - h - gap, w, h },
    { x: x - w / 2, y: y + 2 * gap, w, h }, { x: x - w / 2, y: y - h - 2 * gap, w, h },
    { x: x - w - gap, y: y + 3 * gap + h, w, h }, { x: x - w - gap, y: y - 2 * h - 3 * gap, w, h },
  ];
  const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  let best = candidates[0]!, bestCost = Infinity;
  candidates.forEach((c, k) => {
    const clamped = { ...c, x: Math.max(area.x + 4, Math.min(area.x + area.w - w - 4, c.x)), y: Math.max(area.y + 4, Math.min(area.y + area.h - h - 4, c.y)) };
    let cost = k * 0.5 + (clamped.x !== c.x || clamped.y !== c.y ? 5 : 0);
    for (const p of avoid) if (p[0] >= clamped.x - 3 && p[0] <= clamped.x + w + 3 && p[1] >= clamped.y - 3 && p[1] <= clamped.y + h + 3) cost += 10;
    for (const b of taken) if (overlaps(clamped, b)) cost += 1000;
    if (cost < bestCost) [best, bestCost] = [clamped, cost];
  });
  return best;
}

/** A legend: a line (and marker) per entry, in a framed box. */
export function legendSize(entries: ReadonlyArray<{ text: string }>): { w: number; h: number } {
  const th = glyphHeight * fontScale;
  return { w: 12 + 40 + 10 + Math.max(...entries.map((e) => textWidth(e.text, fontScale))) + 12, h: 10 + entries.length * (th + 12) - 2 };
}

export function drawLegend(canvas: Canvas, x: number, y: number, entries: ReadonlyArray<{ text: string; draw: (x: number, y: number) => void }>): void {
  const th = glyphHeight * fontScale, { w, h } = legendSize(entries);
  canvas.fillRect(x, y, w, h, [255, 255, 255]);
  canvas.rect(x, y, w, h, [190, 190, 190]);
  entries.forEach((e, k) => {
    const cy = y + 10 + k * (th + 12) + th / 2;
    e.draw(x + 12 + 20, cy);
    canvas.text(x + 12 + 40 + 10, cy - th / 2, e.text, ink, fontScale);
  });
}
