// An RGB raster for the PNG pictures (plots, slice panels): pixels, rectangles, thick
// and dashed lines, markers, and text in the 5x7 bitmap font at integer scales (so
// letters stay crisp), horizontal or turned a quarter left (y-axis titles).
import { glyph, glyphAdvance, glyphHeight, textWidth } from './font';
import { encodeRgbPng } from './png';

export type Rgb = readonly [number, number, number];
export type Marker = 'circle' | 'square' | 'diamond' | 'triangle';

export const white: Rgb = [255, 255, 255];
export const ink: Rgb = [35, 35, 35];

export class Canvas {
  readonly data: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: Rgb = white) {
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; ++i) this.data.set(background, i * 3);
  }

  pixel(x: number, y: number, rgb: Rgb): void {
    const px = Math.round(x), py = Math.round(y);
    if (px < 0 || py < 0 || px >= this.width || py >= this.height) return;
    this.data.set(rgb, (py * this.width + px) * 3);
  }

  fillRect(x: number, y: number, w: number, h: number, rgb: Rgb): void {
    const x0 = Math.max(0, Math.round(x)), y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w)), y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; ++yy) for (let xx = x0; xx < x1; ++xx) this.data.set(rgb, (yy * this.width + xx) * 3);
  }

  /** A one-pixel outline. */
  rect(x: number, y: number, w: number, h: number, rgb: Rgb): void {
    this.fillRect(x, y, w, 1, rgb);
    this.fillRect(x, y + h - 1, w, 1, rgb);
    this.fillRect(x, y, 1, h, rgb);
    this.fillRect(x + w - 1, y, 1, h, rgb);
  }

  /** A line `thickness` pixels wide; `dash` [on, off] in pixels draws it dashed. */
  line(x0: number, y0: number, x1: number, y1: number, rgb: Rgb, thickness = 1, dash?: readonly [number, number]): void {
    const n = Math.max(Math.ceil(Math.abs(x1 - x0)), Math.ceil(Math.abs(y1 - y0)), 1);
    const lo = -Math.floor((thickness - 1) / 2), hi = lo + thickness - 1;
    for (let k = 0; k <= n; ++k) {
      if (dash && k % (dash[0] + dash[1]) >= dash[0]) continue;
      const x = Math.round(x0 + ((x1 - x0) * k) / n), y = Math.round(y0 + ((y1 - y0) * k) / n);
      for (let dy = lo; dy <= hi; ++dy) for (let dx = lo; dx <= hi; ++dx) this.pixel(x + dx, y + dy, rgb);
    }
  }

  /** A polyline through the points. */
  polyline(points: ReadonlyArray<readonly [number, number]>, rgb: Rgb, thickness = 1): void {
    for (let i = 1; i < points.length; ++i) this.line(points[i - 1]![0], points[i - 1]![1], points[i]![0], points[i]![1], rgb, thickness);
  }

  /** A filled marker of radius r centred on (x, y), with a one-pixel outline of `outline` (white by default, so overlapping markers stay apart). */
  marker(x: number, y: number, shape: Marker, rgb: Rgb, r = 4, outline: Rgb | null = white): void {
    const cx = Math.round(x), cy = Math.round(y);
    const inside = (dx: number, dy: number, s: number) => {
      switch (shape) {
        case 'circle': return dx * dx + dy * dy <= s * s + s * 0.8;
        case 'square': return Math.abs(dx) <= s * 0.85 && Math.abs(dy) <= s * 0.85;
        case 'diamond': return Math.abs(dx) + Math.abs(dy) <= s * 1.2;
        case 'triangle': return dy <= s * 0.8 && dy >= -s && Math.abs(dx) <= (dy + s) * 0.6;
      }
    };
    const outer = r + 1;
    for (let dy = -outer - 1; dy <= outer + 1; ++dy) {
      for (let dx = -outer - 1; dx <= outer + 1; ++dx) {
        if (inside(dx, dy, r)) this.pixel(cx + dx, cy + dy, rgb);
        else if (outline && inside(dx, dy, outer)) this.pixel(cx + dx, cy + dy, outline);
      }
    }
  }

  /** A ring (unfilled circle) of radius r, `thickness` pixels wide. */
  ring(x: number, y: number, r: number, rgb: Rgb, thickness = 2): void {
    const cx = Math.round(x), cy = Math.round(y), R = r + thickness;
    for (let dy = -R; dy <= R; ++dy) {
      for (let dx = -R; dx <= R; ++dx) {
        const d = Math.sqrt(dx * dx + dy * dy);
        if (d >= r && d < r + thickness) this.pixel(cx + dx, cy + dy, rgb);
      }
    }
  }

  /** Text with its top-left corner at (x, y), each font pixel drawn as a scale x scale block. Returns its width. */
  text(x: number, y: number, s: string, rgb: Rgb = ink, scale = 1): number {
    const x0 = Math.round(x), y0 = Math.round(y);
    [...s].forEach((ch, k) => {
      glyph(ch).forEach((row, r) => {
        for (let c = 0; c < row.length; ++c) {
          if (row[c] === '#') this.fillRect(x0 + (k * glyphAdvance + c) * scale, y0 + r * scale, scale, scale, rgb);
        }
      });
    });
    return textWidth(s, scale);
  }

  /** Text centred on x. */
  textCentred(x: number, y: number, s: string, rgb: Rgb = ink, scale = 1): void {
    this.text(x - textWidth(s, scale) / 2, y, s, rgb, scale);
  }

  /** Text turned a quarter left (reading upwards), its block's top-left corner at (x, y), centred on y + extent / 2 by the caller. */
  textUp(x: number, y: number, s: string, rgb: Rgb = ink, scale = 1): void {
    const x0 = Math.round(x), bottom = Math.round(y) + textWidth(s, scale);
    [...s].forEach((ch, k) => {
      glyph(ch).forEach((row, r) => {
        for (let c = 0; c < row.length; ++c) {
          // Font column c runs up the page; font row r runs right.
          if (row[c] === '#') this.fillRect(x0 + r * scale, bottom - (k * glyphAdvance + c + 1) * scale, scale, scale, rgb);
        }
      });
    });
  }

  /** A box behind text, so labels stay readable over lines (padding in pixels). */
  label(x: number, y: number, s: string, rgb: Rgb, scale = 1, background: Rgb = white, pad = 2): { x: number; y: number; w: number; h: number } {
    const w = textWidth(s, scale) + 2 * pad, h = glyphHeight * scale + 2 * pad;
    this.fillRect(x - pad, y - pad, w, h, background);
    this.text(x, y, s, rgb, scale);
    return { x: x - pad, y: y - pad, w, h };
  }

  png(): Buffer {
    return encodeRgbPng(this.data, this.width, this.height);
  }
}

export { glyphHeight, textWidth };
