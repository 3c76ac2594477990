// Slice panels as an RGB PNG: images and probabilities in grey, label maps in a fixed
// palette (over the image, or on a dark background), side by side at a readable size
// (small slices upscaled by nearest neighbour), each with a title, and a legend with
// the class names and the grey scales. The demos write their slice.png with it.
import * as fs from 'node:fs';
import { Canvas, ink, type Rgb } from './canvas';
import { glyphHeight, textWidth } from './font';

/** Class 0 (background), then distinct colours for classes 1, 2, ... (repeating after 8). */
export const labelColours: readonly Rgb[] = [
  [28, 28, 34], [230, 70, 55], [75, 190, 85], [60, 130, 240], [250, 205, 35],
  [175, 90, 215], [40, 200, 210], [245, 140, 30], [240, 120, 190],
];

export function labelColour(k: number): Rgb {
  return k <= 0 ? labelColours[0]! : labelColours[1 + ((k - 1) % (labelColours.length - 1))]!;
}

/** Grey values mapped from [lo, hi] to black..white. */
export interface GreyImage {
  data: ArrayLike<number>;
  lo: number;
  hi: number;
}

export type SlicePanel =
  /** An image or a probability map, in grey; `scale` names it in the legend (a grey ramp from lo to hi). */
  | ({ title: string; kind: 'grey'; scale?: string } & GreyImage)
  /** Class ids in the palette; with `underlay`, class 0 shows that image in grey and the classes are blended over it. */
  | { title: string; kind: 'labels'; data: ArrayLike<number>; underlay?: GreyImage };

export interface SlicePanelOptions {
  /** Class names for the legend of the label panels (default 'class 0', 'class 1', ... up to the largest id). */
  classes?: readonly string[];
  /** Smallest panel side in pixels: small slices are upscaled by an integer factor (default 256). */
  minSize?: number;
  /** A line above the panels. */
  caption?: string;
  /** Panels per row (default all in one row). */
  columns?: number;
}

const greyRgb = (v: number): Rgb => [v, v, v];

const grey = (g: GreyImage, i: number) => {
  const v = (g.data[i]! - g.lo) / (g.hi - g.lo || 1);
  return Math.max(0, Math.min(255, Math.round(v * 255)));
};

/** Opacity of label colours over an underlay. */
const overlay = 0.7;

function panelColour(panel: SlicePanel, i: number): Rgb {
  if (panel.kind === 'grey') {
    return greyRgb(grey(panel, i));
  }
  const k = Math.round(panel.data[i]!);
  if (!panel.underlay) return labelColour(k);
  const v = grey(panel.underlay, i);
  if (k <= 0) return greyRgb(v);
  const [r, g, b] = labelColour(k);
  const mix = (c: number) => Math.round(overlay * c + (1 - overlay) * v);
  return [mix(r), mix(g), mix(b)];
}

interface LegendItem {
  width: number;
  draw(canvas: Canvas, x: number, y: number): void;
}

const titleScale = 2, swatch = 16;

function legendItems(panels: readonly SlicePanel[], options: SlicePanelOptions): LegendItem[] {
  const items: LegendItem[] = [];
  const labelPanels = panels.filter((p) => p.kind === 'labels');
  if (labelPanels.length) {
    let largest = 0;
    for (const p of labelPanels) for (let i = 0; i < p.data.length; ++i) largest = Math.max(largest, Math.round(p.data[i]!));
    const names = options.classes ?? Array.from({ length: largest + 1 }, (_, k) => `class ${k}`);
    const underlay = labelPanels.some((p) => p.kind === 'labels' && p.underlay);
    names.forEach((name, k) => items.push({
      width: swatch + 6 + textWidth(name, titleScale),
      draw(canvas, x, y) {
        if (k === 0 && underlay) {
          // Background shows the image: a grey ramp.
          for (let d = 0; d < swatch; ++d) canvas.fillRect(x + d, y, 1, swatch, greyRgb(Math.round(40 + (180 * d) / swatch)));
        } else {
          canvas.fillRect(x, y, swatch, swatch, labelColour(k));
        }
        canvas.rect(x, y, swatch, swatch, [90, 90, 90]);
        canvas.text(x + swatch + 6, y + (swatch - glyphHeight * titleScale) / 2, name, ink, titleScale);
      },
    }));
  }
  for (const p of panels) {
    if (p.kind !== 'grey' || !p.scale) continue;
    const ramp = 96, lo = fmt(p.lo), hi = fmt(p.hi), name = `${p.scale}:`;
    const w1 = textWidth(name, titleScale), w2 = textWidth(lo, titleScale);
    items.push({
      width: w1 + 8 + w2 + 6 + ramp + 6 + textWidth(hi, titleScale),
      draw(canvas, x, y) {
        const ty = y + (swatch - glyphHeight * titleScale) / 2;
        canvas.text(x, ty, name, ink, titleScale);
        canvas.text(x + w1 + 8, ty, lo, ink, titleScale);
        const rx = x + w1 + 8 + w2 + 6;
        for (let d = 0; d < ramp; ++d) canvas.fillRect(rx + d, y, 1, swatch, greyRgb(Math.round((255 * d) / (ramp - 1))));
        canvas.rect(rx, y, ramp, swatch, [90, 90, 90]);
        canvas.text(rx + ramp + 6, ty, hi, ink, titleScale);
      },
    });
  }
  return items;
}

function fmt(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

/** The panels (each width x height, row-major) drawn as one RGB PNG. */
export function drawSlicePanels(panels: readonly SlicePanel[], width: number, height: number, options: SlicePanelOptions = {}): Buffer {
  for (const p of panels) {
    if (p.data.length !== width * height || (p.kind === 'labels' && p.underlay && p.underlay.data.length !== width * height)) {
      throw new RangeError(`slice panel '${p.title}': expected ${width}x${height} = ${width * height} values, received ${p.data.length}`);
    }
  }
  const scale = Math.max(1, Math.ceil((options.minSize ?? 256) / Math.max(width, height)));
  const pw = width * scale, ph = height * scale;
  const columns = Math.max(1, Math.min(options.columns ?? panels.length, panels.length));
  const rowsOfPanels = Math.ceil(panels.length / columns);
  const margin = 16, gap = 16, titleH = glyphHeight * titleScale + 12;
  const captionH = options.caption ? glyphHeight * titleScale + 22 : 0;
  const gridW = columns * pw + (columns - 1) * gap;
  const items = legendItems(panels, options);
  const innerW = Math.max(gridW, ...items.map((it) => it.width), options.caption ? textWidth(options.caption, titleScale) : 0);
  // Legend items flow left to right, wrapping at the panels' width.
  const lines: LegendItem[][] = [[]];
  let used = 0;
  for (const it of items) {
    if (used > 0 && used + 24 + it.width > innerW) {
      lines.push([]);
      used = 0;
    }
    used += (used > 0 ? 24 : 0) + it.width;
    lines[lines.length - 1]!.push(it);
  }
  const legendH = items.length ? 12 + lines.length * (swatch + 10) : 0;
  const canvas = new Canvas(innerW + 2 * margin, margin + captionH + rowsOfPanels * (titleH + ph) + (rowsOfPanels - 1) * gap + legendH + margin);
  if (options.caption) canvas.text(margin, margin, options.caption, ink, titleScale);
  panels.forEach((panel, n) => {
    const x0 = margin + (n % columns) * (pw + gap);
    const y0 = margin + captionH + Math.floor(n / columns) * (titleH + ph + gap);
    canvas.text(x0, y0, panel.title, ink, titleScale);
    const top = y0 + titleH;
    for (let y = 0; y < height; ++y) {
      for (let x = 0; x < width; ++x) canvas.fillRect(x0 + x * scale, top + y * scale, scale, scale, panelColour(panel, y * width + x));
    }
    canvas.rect(x0 - 1, top - 1, pw + 2, ph + 2, [150, 150, 150]);
  });
  let y = canvas.height - margin - legendH + 12;
  for (const line of lines) {
    let x = margin;
    for (const it of line) {
      it.draw(canvas, x, y);
      x += it.width + 24;
    }
    y += swatch + 10;
  }
  return canvas.png();
}

export function writeSlicePanels(file: string, panels: readonly SlicePanel[], width: number, height: number, options: SlicePanelOptions = {}): void {
  fs.writeFileSync(file, drawSlicePanels(panels, width, height, options));
}
