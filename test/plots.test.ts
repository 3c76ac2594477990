// The pictures: slice panels, Rand curves and the training plot, decoded and checked
// for what makes them readable (sizes, every curve's and class's colour where it belongs).
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { drawSlicePanels, labelColour } from '../lib/io/panels';
import { Canvas, type Rgb } from '../lib/io/canvas';
import { glyphs, textWidth } from '../lib/io/font';
import { drawRandCurves } from '../lib/cli/rand_plot';
import { plotColours, plotLog } from '../lib/cli/plot';
import { linearAxis, logAxis } from '../lib/cli/chart';

function decode(png: Buffer): PNG {
  return PNG.sync.read(png);
}

/** The pixels of exactly this colour, as [x, y], within rows y0..y1. */
function pixelsOf(png: PNG, rgb: Rgb, y0 = 0, y1 = png.height): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let y = y0; y < y1; ++y) {
    for (let x = 0; x < png.width; ++x) {
      const i = (y * png.width + x) * 4;
      if (png.data[i] === rgb[0] && png.data[i + 1] === rgb[1] && png.data[i + 2] === rgb[2]) out.push([x, y]);
    }
  }
  return out;
}

const extent = (pts: Array<[number, number]>, axis: 0 | 1) => Math.max(...pts.map((p) => p[axis])) - Math.min(...pts.map((p) => p[axis]));

test('the font has capitals, digits and the punctuation titles use; text is drawn at integer scales', (t) => {
  for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:%=/_()[]-+.,') t.truthy(glyphs[ch], ch);
  for (const [ch, rows] of Object.entries(glyphs)) t.true((rows.length === 7 || rows.length === 9) && rows.every((r) => r.length === 5), ch);
  const canvas = new Canvas(40, 20);
  t.is(canvas.text(1, 1, 'T:', [0, 0, 0], 2), textWidth('T:', 2));
  const png = decode(canvas.png());
  // 'T' at scale 2: its bar is two rows of ten black pixels.
  t.is(pixelsOf(png, [0, 0, 0], 1, 3).length, 20);
});

test('axes: nice linear ticks inside a fitted range; log axes label decades', (t) => {
  const x = linearAxis([0.946, 0.999]);
  t.true(x.lo > 0.9 && x.hi < 1.01, `${x.lo}..${x.hi}`);
  t.deepEqual(x.ticks, [0.95, 0.96, 0.97, 0.98, 0.99, 1]);
  t.is(x.format(0.95), '0.95');
  const loss = logAxis([0.001, 0.02, 3]);
  t.deepEqual(loss.ticks, [0.001, 0.01, 0.1, 1]);
  t.deepEqual(loss.ticks.map(loss.format), ['0.001', '0.01', '0.1', '1']);
  t.deepEqual(logAxis([0.005, 0.01]).ticks.map((v) => Number(v.toPrecision(3))), [0.005, 0.006, 0.007, 0.008, 0.009, 0.01]);
});

test('Rand curves: fitted axes spread the points; both curves, a one-point curve included, show in the plot area', (t) => {
  const blue: Rgb = [31, 119, 180], red: Rgb = [214, 39, 40];
  const cc = Array.from({ length: 19 }, (_, i) => {
    const th = (i + 1) / 20, vSplit = 0.94 + 0.06 * th, vMerge = 0.75 + 0.24 * Math.sin(th * 2.6);
    return { threshold: th, vSplit, vMerge, fScore: (2 * vSplit * vMerge) / (vSplit + vMerge) };
  });
  const ws = [{ threshold: 0.5, vSplit: 0.991, vMerge: 0.992, fScore: 0.9915 }];
  const png = decode(drawRandCurves([{ name: 'connected components', points: cc, color: blue }, { name: 'watershed', points: ws, color: red }]));
  t.true(png.width >= 800 && png.height >= 700, `${png.width}x${png.height}`);
  // Below the legend (the top 200 rows): the curves themselves.
  const bluePlot = pixelsOf(png, blue, 200), redPlot = pixelsOf(png, red, 200);
  t.true(bluePlot.length > 300, `${bluePlot.length} blue pixels`);
  t.true(redPlot.length > 60, `${redPlot.length} red pixels: the single point's marker, its ring and its label`);
  // Axes fitted to the data: the 19 points span most of the plot, not a corner of a 0..1 square.
  t.true(extent(bluePlot, 0) > 0.6 * png.width && extent(bluePlot, 1) > 0.5 * png.height, `${extent(bluePlot, 0)} x ${extent(bluePlot, 1)}`);
});

function writeLog(file: string, phases: number, validations: boolean): void {
  const lines: object[] = [];
  let step = 0;
  for (let phase = 1; phase <= phases; ++phase) {
    for (let i = 0; i < 60; ++i) {
      ++step;
      if (validations && step % 20 === 0) lines.push({ step, phase, validation: 0.5 + step / 400, metric: 'dice', best: 0.5 + step / 400, bestStep: step });
      lines.push({ step, phase, phaseName: phase === 2 ? 'fine-tune' : `phase ${phase}`, epoch: 0, loss: 2 * Math.exp(-step / 30) + 0.01, lr: 1e-3 / phase, gradNorm: 1, batchSize: 1, voxelsPerSecond: 1 });
    }
  }
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

test('segvol plot: readable size, the loss and learning rate drawn, phase boundaries as vertical lines, validation points', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-plots-'));
  writeLog(path.join(dir, 'two.log.jsonl'), 2, true);
  t.deepEqual(plotLog(path.join(dir, 'two.log.jsonl'), path.join(dir, 'two.png')), { steps: 120, validations: 6 });
  const png = decode(fs.readFileSync(path.join(dir, 'two.png')));
  t.true(png.width >= 900 && png.height >= 600, `${png.width}x${png.height}`);
  for (const [name, rgb] of [['loss', plotColours.loss], ['lr', plotColours.lr], ['validation', plotColours.validation]] as const) {
    t.true(pixelsOf(png, rgb).length > 100, `${name} drawn`);
  }
  // The boundary between the phases: a dashed line in one column pair through the panels.
  const phase = pixelsOf(png, plotColours.phase);
  const columns = new Map<number, number>();
  for (const [x] of phase) columns.set(x, (columns.get(x) ?? 0) + 1);
  t.true(Math.max(...columns.values()) > 0.4 * png.height, 'a vertical phase line');
  writeLog(path.join(dir, 'one.log.jsonl'), 1, false);
  t.deepEqual(plotLog(path.join(dir, 'one.log.jsonl'), path.join(dir, 'one.png')), { steps: 60, validations: 0 });
  const one = decode(fs.readFileSync(path.join(dir, 'one.png')));
  t.is(pixelsOf(one, plotColours.phase).length, 0, 'one phase: no boundary');
  t.is(pixelsOf(one, plotColours.validation).length, 0, 'no validation panel');
  fs.rmSync(dir, { recursive: true });
});

test('slice panels: upscaled to a readable size, labels in the palette with a legend of every class', (t) => {
  const [H, W] = [64, 64];
  const image = Float32Array.from({ length: H * W }, (_, i) => Math.sin(i / 7));
  const labels = Float32Array.from({ length: H * W }, (_, i) => Math.floor((i % W) / 10) % 5);
  const classes = ['background', 'necrosis', 'edema', 'non-enhancing tumour', 'enhancing tumour'];
  const png = decode(drawSlicePanels([
    { title: 'flair', kind: 'grey', data: image, lo: -1, hi: 1 },
    { title: 'truth', kind: 'labels', data: labels },
    { title: 'prediction', kind: 'labels', data: labels, underlay: { data: image, lo: -1, hi: 1 } },
  ], W, H, { classes }));
  t.true(png.width >= 3 * 256 && png.height >= 256, `${png.width}x${png.height}`);
  // The label panel without underlay shows the palette itself, 4 x 4 pixels per voxel at this size.
  for (let k = 0; k < 5; ++k) t.true(pixelsOf(png, labelColour(k)).length >= 16 * 10 * H, `class ${k} in the panel`);
  // The legend, below the 256-pixel panels and their titles, has a swatch of every class but the background
  // (which shows the image under the labels: a grey ramp).
  const legend = 16 + 26 + 256 + 2;
  for (let k = 1; k < 5; ++k) t.true(pixelsOf(png, labelColour(k), legend).length >= 14 * 14, `class ${k} in the legend`);
});

test('the README shows the pictures its commands write: each in docs/images, a readable PNG under 150 KB', (t) => {
  const root = path.join(__dirname, '..');
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const images = [...readme.matchAll(/!\[[^\]]*\]\((docs\/images\/[^)]+\.png)\)/g)].map((m) => m[1]!);
  t.deepEqual(images.sort(), ['docs/images/brats-slice.png', 'docs/images/curve.png', 'docs/images/demo-slice.png', 'docs/images/rand.png']);
  for (const image of images) {
    const bytes = fs.readFileSync(path.join(root, image));
    t.true(bytes.length < 150 * 1024, `${image}: ${bytes.length} bytes`);
    const png = decode(bytes);
    t.true(png.width >= 800 && png.height >= 380, `${image}: ${png.width}x${png.height}`);
  }
});
