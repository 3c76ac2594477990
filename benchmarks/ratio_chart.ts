// The `all` suite's table as a PNG: one horizontal bar per case, its ratio torch_ms /
// segvol_ms, with the line at 1 (even) marked; cases without a ratio (no peer, a failed
// process) are listed with the reason instead of a bar. Drawn with the plots' own canvas
// and axes (lib/cli/chart.ts), so no image library is needed.
import { Frame, fontScale, linearAxis, type Axis } from '../lib/cli/chart';
import { Canvas, ink, type Rgb } from '../lib/io/canvas';
import { glyphHeight, textWidth } from '../lib/io/font';

export const ratioColours = { faster: [40, 120, 190] as Rgb, slower: [205, 110, 20] as Rgb };
const even: Rgb = [90, 90, 90], muted: Rgb = [130, 130, 130];

export interface RatioBar {
  label: string;
  ratio: number | null;
  segvol_ms?: number | null;
  torch_ms?: number | null;
  note?: string;
}

export function drawRatioChart(rows: readonly RatioBar[], title: string, width = 1100): Buffer {
  const th = glyphHeight * fontScale, barH = 26, rowH = 40;
  const ratios = rows.map((r) => r.ratio).filter((r): r is number => r !== null);
  const x = linearAxis([0, 1, ...ratios], { margin: 0.08, min: 0, target: 8 });
  // No y ticks: the rows are categories, named at the left.
  const y: Axis = { lo: 0, hi: rows.length, log: false, ticks: [], minor: [], format: String };
  const left = 24 + Math.max(...rows.map((r) => textWidth(r.label, fontScale))) + 16;
  const top = 20 + th + 14 + th + 20, bottom = 9 + th + 10 + th + 20, right = 30;
  const height = top + rows.length * rowH + bottom;
  const canvas = new Canvas(width, height);
  canvas.text(24, 20, title, ink, fontScale);
  canvas.text(24, 20 + th + 14, 'ratio = torch ms / segvol ms, median of the repeats (above 1: segvol is faster)', muted, fontScale);
  const frame = new Frame(canvas, { x: left, y: top, w: width - left - right, h: rows.length * rowH }, x, y);
  frame.draw();
  frame.titles('torch ms / segvol ms', undefined);
  // The line at 1 under the bars, so that it never crosses a bar's value.
  const oneX = Math.round(frame.px(1));
  canvas.line(oneX, top, oneX, top + rows.length * rowH - 1, even, 2, [6, 4]);
  rows.forEach((r, k) => {
    const cy = top + k * rowH + rowH / 2;
    canvas.text(left - 16 - textWidth(r.label, fontScale), cy - th / 2, r.label, ink, fontScale);
    if (r.ratio === null) {
      canvas.text(left + 10, cy - th / 2, r.note ? 'no ratio: no PyTorch peer' : 'no ratio', muted, fontScale);
      return;
    }
    const x0 = frame.px(0), x1 = frame.px(r.ratio);
    canvas.fillRect(x0, cy - barH / 2, Math.max(1, x1 - x0), barH, r.ratio >= 1 ? ratioColours.faster : ratioColours.slower);
    const value = r.ratio.toFixed(2);
    const inside = x1 - x0 > textWidth(value, fontScale) + 16;
    canvas.text(inside ? x1 - 8 - textWidth(value, fontScale) : x1 + 8, cy - th / 2, value, inside ? [255, 255, 255] : ink, fontScale);
  });
  return canvas.png();
}
