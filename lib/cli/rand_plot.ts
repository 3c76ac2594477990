// `segvol evaluate --boundary --plot`: Rand split vs merge score curves (the 2D-3D ConvNet
// paper's Fig. 4), one per segmentation method, as a PNG: axes fitted to the points,
// every threshold's point marked, the best point of each curve ringed and labelled with
// its Rand F-score and threshold, lines of equal F-score, a legend and axis titles.
import { Canvas, ink, type Marker, type Rgb } from '../io/canvas';
import { glyphHeight, textWidth } from '../io/font';
import { drawLegend, fontScale, Frame, legendSize, linearAxis, placeLabel, type Box } from './chart';

export interface RandCurve {
  name: string;
  points: ReadonlyArray<{ threshold: number; vSplit: number; vMerge: number; fScore: number }>;
  color: Rgb;
  marker?: Marker;
}

/**
 * The curves of a boundary map's evaluation (segvol evaluate's randThreshold and randWatershed
 * results), as `evaluate --plot` and the viewer draw them; none when the result has no curves.
 */
export function evaluationCurves(result: Record<string, unknown>): RandCurve[] {
  const curve = (key: string) => (result[key] as { curve?: RandCurve['points'] } | undefined)?.curve;
  const curves: RandCurve[] = [];
  const threshold = curve('randThreshold'), watershed = curve('randWatershed');
  if (threshold?.length) curves.push({ name: 'connected components', points: threshold, color: [31, 119, 180] });
  if (watershed?.length) curves.push({ name: 'watershed', points: watershed, color: [214, 39, 40] });
  return curves;
}

const markers: Marker[] = ['circle', 'square', 'diamond', 'triangle'];
const isoColour: Rgb = [185, 185, 185], isoLabelColour: Rgb = [160, 160, 160];

const fScore = (s: number, m: number) => (s + m > 0 ? (2 * s * m) / (s + m) : 0);

/** The curves drawn as a PNG (width x height pixels). */
export function drawRandCurves(curves: readonly RandCurve[], width = 820, height = 800): Buffer {
  const canvas = new Canvas(width, height);
  const th = glyphHeight * fontScale;
  const data = curves.map((c) => c.points.filter((p) => Number.isFinite(p.vSplit) && Number.isFinite(p.vMerge)));
  const all = data.flat();
  const x = linearAxis(all.map((p) => p.vSplit)), y = linearAxis(all.map((p) => p.vMerge));
  // Scores are at most 1: no tick beyond.
  x.ticks = x.ticks.filter((v) => v <= 1 + 1e-12);
  y.ticks = y.ticks.filter((v) => v <= 1 + 1e-12);
  const widest = Math.max(...y.ticks.map((v) => textWidth(y.format(v), fontScale)), 0);
  const best = data.map((points) => points.reduce<(typeof points)[number] | undefined>((b, p) => (!b || p.fScore > b.fScore ? p : b), undefined));
  // The legend above the plot, so it hides no point.
  const entries = curves.map((c, k) => ({
    text: `${c.name} (${data[k]!.length} threshold${data[k]!.length === 1 ? '' : 's'})`,
    draw: (lx: number, ly: number) => {
      canvas.line(lx - 18, ly, lx + 18, ly, c.color, 2);
      canvas.marker(lx, ly, c.marker ?? markers[k % markers.length]!, c.color, 4);
    },
  }));
  entries.push({ text: 'ringed: its best Rand F-score, at threshold t', draw: (lx, ly) => canvas.ring(lx, ly, 7, ink, 2) });
  const legend = legendSize(entries);
  const left = 16 + th + 12 + widest + 14, top = 20 + th + 16 + legend.h + 16, bottom = 9 + th + 10 + th + 20, right = 28;
  const frame = new Frame(canvas, { x: left, y: top, w: width - left - right, h: height - top - bottom }, x, y);
  canvas.textCentred(width / 2, 20, 'Rand split vs merge score over thresholds t', ink, fontScale);
  drawLegend(canvas, left, 20 + th + 16, entries);
  frame.draw();

  // Lines of equal F-score (dotted), at nice values within the view, labelled where they leave the top or the right.
  const fs = all.map((p) => fScore(p.vSplit, p.vMerge)).filter(Number.isFinite);
  if (fs.length) {
    const fAxis = linearAxis(fs, { target: 4, margin: 0 });
    for (const f of fAxis.ticks) {
      if (!(f > 0 && f < 1)) continue;
      const pts: Array<[number, number]> = [];
      for (let i = 0; i <= 400; ++i) {
        const s = x.lo + ((x.hi - x.lo) * i) / 400;
        const m = (f * s) / (2 * s - f);  // F(s, m) = f
        if (2 * s - f > 0 && m >= y.lo && m <= y.hi) pts.push([frame.px(s), frame.py(m)]);
      }
      pts.forEach((p, i) => { if (i % 6 < 3) canvas.pixel(p[0], p[1], isoColour); });
      // Labelled where the line enters the view on the left or the top.
      const start = pts[0];
      if (start) {
        const label = `F=${fAxis.format(f)}`;
        canvas.label(Math.min(start[0] + 4, left + frame.box.w - textWidth(label, fontScale) - 4), start[1] + 5, label, isoLabelColour, fontScale);
      }
    }
  }

  const pixels = data.map((points) => points.map((p) => [frame.px(p.vSplit), frame.py(p.vMerge)] as [number, number]));
  // Earlier curves drawn thicker and with larger markers, so a later curve on the same points leaves them visible.
  curves.forEach((c, k) => canvas.polyline(pixels[k]!, c.color, k === 0 && curves.length > 1 ? 3 : 2));
  curves.forEach((c, k) => {
    const r = Math.max(3, 6 - 2 * k);
    for (const [px, py] of pixels[k]!) canvas.marker(px, py, c.marker ?? markers[k % markers.length]!, c.color, r);
  });

  const taken: Box[] = [];
  const avoid = pixels.flat();
  const tag = (px: number, py: number, s: string, colour: Rgb, border: boolean) => {
    const box = placeLabel(px, py, textWidth(s, fontScale) + 8, th + 8, frame.box, avoid, taken);
    taken.push(box);
    // A leader from the label's nearest edge to the point.
    const ex = Math.max(box.x, Math.min(box.x + box.w, px)), ey = Math.max(box.y, Math.min(box.y + box.h, py));
    if (Math.hypot(ex - px, ey - py) > 12) canvas.line(px, py, ex, ey, colour, 1);
    canvas.fillRect(box.x, box.y, box.w, box.h, [255, 255, 255]);
    if (border) canvas.rect(box.x, box.y, box.w, box.h, colour);
    canvas.text(box.x + 4, box.y + 4, s, colour, fontScale);
  };
  curves.forEach((c, k) => {
    const b = best[k];
    if (!b) return;
    canvas.ring(frame.px(b.vSplit), frame.py(b.vMerge), 9, c.color, 2);
  });
  curves.forEach((c, k) => {
    const b = best[k];
    if (b) tag(frame.px(b.vSplit), frame.py(b.vMerge), `F=${b.fScore.toFixed(4)} at t=${b.threshold.toFixed(2)}`, c.color, true);
  });
  // Where the first curve starts and ends: the direction of the threshold search.
  const ends = data[0] ?? [];
  for (const p of ends.length > 1 ? [ends[0]!, ends[ends.length - 1]!] : []) {
    if (p !== best[0]) tag(frame.px(p.vSplit), frame.py(p.vMerge), `t=${p.threshold.toFixed(2)}`, [110, 110, 110], false);
  }
  frame.titles('Rand split score', 'Rand merge score');
  return canvas.png();
}
