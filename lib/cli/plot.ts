// `segvol plot`: a training log (JSON lines) drawn as a PNG: the loss, the
// learning rate and, where present, the validation score against the step, one
// panel each, with tick labels in a small bitmap font (no font files needed).
import * as fs from 'node:fs';
import { PNG } from 'pngjs';
import { SegvolError } from '../core/errors';

// 5x7 glyphs, one string per row, '#' lit.
const glyphs: Record<string, string[]> = {
  '0': [' ### ', '#   #', '#  ##', '# # #', '##  #', '#   #', ' ### '],
  '1': ['  #  ', ' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '],
  '2': [' ### ', '#   #', '    #', '   # ', '  #  ', ' #   ', '#####'],
  '3': ['#####', '   # ', '  #  ', '   # ', '    #', '#   #', ' ### '],
  '4': ['   # ', '  ## ', ' # # ', '#  # ', '#####', '   # ', '   # '],
  '5': ['#####', '#    ', '#### ', '    #', '    #', '#   #', ' ### '],
  '6': ['  ## ', ' #   ', '#    ', '#### ', '#   #', '#   #', ' ### '],
  '7': ['#####', '    #', '   # ', '  #  ', ' #   ', ' #   ', ' #   '],
  '8': [' ### ', '#   #', '#   #', ' ### ', '#   #', '#   #', ' ### '],
  '9': [' ### ', '#   #', '#   #', ' ####', '    #', '   # ', ' ##  '],
  '.': ['     ', '     ', '     ', '     ', '     ', ' ##  ', ' ##  '],
  '-': ['     ', '     ', '     ', '#####', '     ', '     ', '     '],
  '+': ['     ', '  #  ', '  #  ', '#####', '  #  ', '  #  ', '     '],
  ' ': ['     ', '     ', '     ', '     ', '     ', '     ', '     '],
  'a': ['     ', '     ', ' ### ', '    #', ' ####', '#   #', ' ####'],
  'b': ['#    ', '#    ', '# ## ', '##  #', '#   #', '#   #', '#### '],
  'c': ['     ', '     ', ' ### ', '#    ', '#    ', '#   #', ' ### '],
  'd': ['    #', '    #', ' ## #', '#  ##', '#   #', '#   #', ' ####'],
  'e': ['     ', '     ', ' ### ', '#   #', '#####', '#    ', ' ### '],
  'f': ['  ## ', ' #  #', ' #   ', '###  ', ' #   ', ' #   ', ' #   '],
  'g': ['     ', ' ####', '#   #', '#   #', ' ####', '    #', ' ### '],
  'h': ['#    ', '#    ', '# ## ', '##  #', '#   #', '#   #', '#   #'],
  'i': ['  #  ', '     ', ' ##  ', '  #  ', '  #  ', '  #  ', ' ### '],
  'k': ['#    ', '#    ', '#  # ', '# #  ', '##   ', '# #  ', '#  # '],
  'l': [' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '],
  'm': ['     ', '     ', '## # ', '# # #', '# # #', '#   #', '#   #'],
  'n': ['     ', '     ', '# ## ', '##  #', '#   #', '#   #', '#   #'],
  'o': ['     ', '     ', ' ### ', '#   #', '#   #', '#   #', ' ### '],
  'p': ['     ', '     ', '#### ', '#   #', '#### ', '#    ', '#    '],
  'r': ['     ', '     ', '# ## ', '##  #', '#    ', '#    ', '#    '],
  's': ['     ', '     ', ' ####', '#    ', ' ### ', '    #', '#### '],
  't': [' #   ', ' #   ', '###  ', ' #   ', ' #   ', ' #  #', '  ## '],
  'u': ['     ', '     ', '#   #', '#   #', '#   #', '#  ##', ' ## #'],
  'v': ['     ', '     ', '#   #', '#   #', '#   #', ' # # ', '  #  '],
  'w': ['     ', '     ', '#   #', '#   #', '# # #', '# # #', ' # # '],
  'x': ['     ', '     ', '#   #', ' # # ', '  #  ', ' # # ', '#   #'],
  'y': ['     ', '     ', '#   #', '#   #', ' ####', '    #', ' ### '],
  'I': [' ### ', '  #  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '],
  'U': ['#   #', '#   #', '#   #', '#   #', '#   #', '#   #', ' ### '],
  '(': ['   # ', '  #  ', ' #   ', ' #   ', ' #   ', '  #  ', '   # '],
  ')': [' #   ', '  #  ', '   # ', '   # ', '   # ', '  #  ', ' #   '],
  ',': ['     ', '     ', '     ', '     ', ' ##  ', '  #  ', ' #   '],
};

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  pixel(x: number, y: number, rgb: readonly number[]): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (Math.round(y) * this.width + Math.round(x)) * 3;
    this.data[i] = rgb[0]!;
    this.data[i + 1] = rgb[1]!;
    this.data[i + 2] = rgb[2]!;
  }
  line(x0: number, y0: number, x1: number, y1: number, rgb: readonly number[]): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let k = 0; k <= n; ++k) this.pixel(x0 + ((x1 - x0) * k) / n, y0 + ((y1 - y0) * k) / n, rgb);
  }
  text(x: number, y: number, s: string, rgb: readonly number[] = [40, 40, 40]): void {
    [...s].forEach((ch, k) => {
      const g = glyphs[ch] ?? glyphs[ch.toLowerCase()] ?? glyphs[' ']!;
      g.forEach((row, r) => [...row].forEach((c, col) => { if (c === '#') this.pixel(x + k * 6 + col, y + r, rgb); }));
    });
  }
  png(): Buffer {
    const png = new PNG({ width: this.width, height: this.height });
    for (let i = 0; i < this.width * this.height; ++i) {
      png.data[i * 4] = this.data[i * 3]!;
      png.data[i * 4 + 1] = this.data[i * 3 + 1]!;
      png.data[i * 4 + 2] = this.data[i * 3 + 2]!;
      png.data[i * 4 + 3] = 255;
    }
    return PNG.sync.write(png);
  }
}

function label(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-2 ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color: readonly number[];
  /** A log scale on the y axis (learning rates). */
  log?: boolean;
}

/** One panel per series, stacked; x is the step. */
export function drawPanels(series: readonly Series[], width = 720, panelHeight = 200): Buffer {
  const canvas = new Canvas(width, panelHeight * series.length);
  const left = 70, right = 16, top = 20, bottom = 26;
  const allSteps = series.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = Math.min(...allSteps), x1 = Math.max(...allSteps, x0 + 1);
  series.forEach((s, k) => {
    const oy = k * panelHeight;
    const pts = s.points.filter((p) => Number.isFinite(p[1]) && (!s.log || p[1] > 0));
    const f = (v: number) => (s.log ? Math.log10(v) : v);
    const ys = pts.map((p) => f(p[1]));
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (!(hi > lo)) {
      lo -= 0.5;
      hi += 0.5;
    }
    const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
    const py = (y: number) => oy + panelHeight - bottom - ((f(y) - lo) / (hi - lo)) * (panelHeight - top - bottom);
    const grey = [170, 170, 170];
    canvas.line(left, oy + top, left, oy + panelHeight - bottom, grey);
    canvas.line(left, oy + panelHeight - bottom, width - right, oy + panelHeight - bottom, grey);
    canvas.text(left, oy + 6, s.name, s.color);
    for (const t of [0, 0.5, 1]) {
      const v = s.log ? 10 ** (lo + t * (hi - lo)) : lo + t * (hi - lo);
      const y = py(v);
      canvas.line(left - 4, y, left, y, grey);
      canvas.text(2, y - 3, label(v));
      const step = x0 + t * (x1 - x0);
      const x = px(step);
      canvas.line(x, oy + panelHeight - bottom, x, oy + panelHeight - bottom + 4, grey);
      const text = label(Math.round(step));
      canvas.text(Math.min(width - right - 6 * text.length, Math.max(0, x - 3 * text.length)), oy + panelHeight - bottom + 8, text);
    }
    canvas.text(width - right - 24, oy + panelHeight - 12, 'step');
    for (let i = 1; i < pts.length; ++i) canvas.line(px(pts[i - 1]![0]), py(pts[i - 1]![1]), px(pts[i]![0]), py(pts[i]![1]), s.color);
    if (pts.length === 1) canvas.pixel(px(pts[0]![0]), py(pts[0]![1]), s.color);
  });
  return canvas.png();
}

/**
 * Rand split/merge curves (the 2D-3D ConvNet paper's Fig. 4): x the split score, y the
 * merge score, both 0..1, one line per method, with a legend.
 */
export function drawRandCurves(curves: ReadonlyArray<{ name: string; points: Array<[number, number]>; color: readonly number[] }>, size = 480): Buffer {
  const canvas = new Canvas(size, size);
  const left = 50, right = 16, top = 16, bottom = 40;
  const grey = [170, 170, 170];
  const px = (v: number) => left + v * (size - left - right);
  const py = (v: number) => size - bottom - v * (size - top - bottom);
  canvas.line(px(0), py(0), px(1), py(0), grey);
  canvas.line(px(0), py(0), px(0), py(1), grey);
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    canvas.line(px(t), py(0), px(t), py(0) + 4, grey);
    canvas.text(px(t) - 9, py(0) + 8, t.toFixed(2));
    canvas.line(px(0) - 4, py(t), px(0), py(t), grey);
    canvas.text(2, py(t) - 3, t.toFixed(2));
  }
  canvas.text(size / 2 - 60, size - 14, 'rand split score');
  canvas.text(left + 6, top - 10, 'rand merge score');
  curves.forEach((c, k) => {
    const pts = c.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    for (let i = 1; i < pts.length; ++i) canvas.line(px(pts[i - 1]![0]), py(pts[i - 1]![1]), px(pts[i]![0]), py(pts[i]![1]), c.color);
    for (const p of pts) {
      for (let d = -1; d <= 1; ++d) {
        canvas.pixel(px(p[0]) + d, py(p[1]), c.color);
        canvas.pixel(px(p[0]), py(p[1]) + d, c.color);
      }
    }
    canvas.line(left + 12, top + 14 + 12 * k, left + 28, top + 14 + 12 * k, c.color);
    canvas.text(left + 32, top + 11 + 12 * k, c.name, c.color);
  });
  return canvas.png();
}

/** Reads a training log and draws loss, learning rate and validation (if any) against the step. */
export function plotLog(logFile: string, outFile: string): { steps: number; validations: number } {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `plot: cannot read ${logFile}: ${(error as Error).message}`);
  }
  const entries = text.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as { step?: number; loss?: number; lr?: number; validation?: number; metric?: string };
    } catch {
      throw new SegvolError('ERR_FORMAT', `plot: ${logFile} line ${i + 1} is not JSON; expected a training log written by segvol train`);
    }
  });
  const steps = entries.filter((e) => typeof e.step === 'number' && typeof e.loss === 'number');
  if (steps.length === 0) throw new SegvolError('ERR_FORMAT', `plot: ${logFile} holds no training steps (lines with step and loss)`);
  const validations = entries.filter((e) => typeof e.step === 'number' && typeof e.validation === 'number');
  const series: Series[] = [
    { name: 'loss', points: steps.map((e) => [e.step!, e.loss!]), color: [31, 90, 180] },
    { name: 'lr', points: steps.map((e) => [e.step!, e.lr ?? NaN]), color: [200, 110, 20], log: true },
  ];
  if (validations.length) {
    series.push({ name: `validation ${validations[0]!.metric ?? ''}`.trim(), points: validations.map((e) => [e.step!, e.validation!]), color: [30, 140, 60] });
  }
  fs.writeFileSync(outFile, drawPanels(series));
  return { steps: steps.length, validations: validations.length };
}
