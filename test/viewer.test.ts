// segvol view driven in headless Chromium (Debian's chromium package, over the DevTools
// protocol on a pipe): slices and overlays checked pixel by pixel against the volume, the
// live training log, chunks read on a 512^3 Zarr, and the Evaluation tab. Polls, never sleeps
// a fixed time. SEGVOL_UPDATE_DOCS=1 also writes docs/images/viewer.png.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { presets, writeVolume, writeZarr, ZarrWriter } from '../lib';
import { syntheticEm } from '../lib/data/synthetic';
import { writeOmeGroup } from '../lib/io/ome_zarr';
import { labelColours, writeSlicePanels } from '../lib/io/panels';
import { Browser, chromiumMissing, type Page } from './cdp';
import { blockValue, root, segvolArgs, writeBlockStore } from './viewer_fixtures';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-viewer-'));
const missing = chromiumMissing();
const required = process.env.SEGVOL_REQUIRE_CHROMIUM === '1';
const browserTest = (title: string, fn: (t: ExecutionContext) => Promise<void>) => {
  if (missing === undefined) test.serial(title, fn);
  else if (required) test.serial(title, (t) => t.fail(`SEGVOL_REQUIRE_CHROMIUM=1 but ${missing}`));
  else test.skip(`${title} (skipped: ${missing})`, fn);
};

let browser: Browser | undefined;
test.before(() => { if (missing === undefined) browser = new Browser(); });
test.after.always(async () => {
  await browser?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts `segvol view` and resolves with its URL once it listens; stopped when the test ends. */
function view(t: ExecutionContext, args: string[]): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, segvolArgs('view', ...args, '--port', '0'), { cwd: root });
  t.teardown(() => { child.kill('SIGTERM'); });
  let out = '', err = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /segvol view: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!.replace(/\/$/, ''));
    });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => reject(new Error(`segvol view exited with ${code}: ${err}`)));
  });
}

/** Waits for the views in `which` to have drawn more often than `after` says, with nothing pending. */
async function drawn(page: Page, after: number[] = [0, 0, 0], which = [0, 1, 2]): Promise<number[]> {
  return page.until<number[]>(`(() => {
    const counts = [...document.querySelectorAll('.view')].map((v) => Number(v.dataset.drawn ?? 0));
    return document.body.dataset.pending === '0' && ${JSON.stringify(which)}.every((i) => counts[i] > ${JSON.stringify(after)}[i]) ? counts : null;
  })()`, `views ${which.join(', ')} drawn`);
}

/** RGB at the centres of level-0 voxels (row, col) of view `k`'s plane. */
function pixels(page: Page, k: number, at: Array<[number, number]>): Promise<number[][]> {
  return page.eval<number[][]>(`(() => {
    const v = document.querySelectorAll('.view')[${k}];
    const ctx = v.querySelector('canvas.slice').getContext('2d');
    const s = Number(v.dataset.scale), a = Number(v.dataset.aspect), ox = Number(v.dataset.ox), oy = Number(v.dataset.oy);
    return ${JSON.stringify(at)}.map(([r, c]) => [...ctx.getImageData(Math.floor(ox + (c + 0.5) * s), Math.floor(oy + (r + 0.5) * s * a), 1, 1).data.slice(0, 3)]);
  })()`);
}

const D = 12, H = 40, W = 48;
const value = (z: number, y: number, x: number) => (z * 7 + y * 3 + x) % 200;
/** Class 1 in rows 5-19 x cols 5-19, class 2 in rows 22-34 x cols 25-44, in every slice. */
const labelAt = (y: number, x: number) => (y >= 5 && y < 20 && x >= 5 && x < 20 ? 1 : y >= 22 && y < 35 && x >= 25 && x < 45 ? 2 : 0);
const greyOf = (v: number) => Math.max(0, Math.min(255, Math.round((v * 255) / 200)));  // window level 100, width 200

browserTest('slices, cursor, overlays and the readout match the volume pixel for pixel; the page loads nothing from elsewhere', async (t) => {
  const image = path.join(dir, 'image.npy'), labels = path.join(dir, 'labels.npy'), model = path.join(dir, 'model.safetensors');
  const data = new Float32Array(D * H * W), ids = new Float32Array(D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) { data[(z * H + y) * W + x] = value(z, y, x); ids[(z * H + y) * W + x] = labelAt(y, x); }
  writeVolume(image, { data, shape: [D, H, W], dtype: 'float32' });
  writeVolume(labels, { data: ids, shape: [D, H, W], dtype: 'uint8' });
  const net = presets.pyramidNet({ inChannels: 1, classes: 3, hidden: [2], fc: [], kernel: 3, seed: 1 });
  net.info = { normalize: 'slice', classes: ['background', 'cell', 'membrane'] };
  net.save(model);
  const url = await view(t, [image, '--labels', labels, '--model', model]);
  const page = await browser!.open(`${url}/?wl=100&ww=200&opacity=1&overlay=labels`);
  let seen = await drawn(page);
  t.is(await page.eval<string>('document.body.dataset.ready'), 'true');
  t.is(await page.eval<string>(`document.querySelector('.view').dataset.scale`), String(Math.floor(Math.min(
    await page.eval<number>(`document.querySelector('.view').clientWidth`) / W, await page.eval<number>(`document.querySelector('.view').clientHeight`) / H))));
  const z0 = Math.floor(D / 2);
  const probes: Array<[number, number]> = [[0, 0], [2, 30], [10, 10], [25, 30], [39, 47], [21, 4], [30, 44]];

  // The overlay off ('o'): grey values from the window, at the cursor's z.
  await page.key('o');
  seen = await drawn(page, seen);
  t.deepEqual(await pixels(page, 0, probes), probes.map(([y, x]) => Array(3).fill(greyOf(value(z0, y, x)))), 'axial slice, overlay off');
  // The coronal view (y = H/2): rows are z, columns x.
  const coronal: Array<[number, number]> = [[0, 0], [5, 20], [11, 47]];
  t.deepEqual(await pixels(page, 1, coronal), coronal.map(([z, x]) => Array(3).fill(greyOf(value(z, Math.floor(H / 2), x)))), 'coronal slice');

  // Up one slice: the axial view reads its new plane; the others keep theirs and move their cursor line.
  const coronalBefore = seen[1];
  await page.key('ArrowUp');
  seen = await drawn(page, seen, [0]);
  t.is(seen[1], coronalBefore, 'the coronal plane did not change, so it was not read again');
  t.is(await page.until<string>(`document.querySelector('#readout').dataset.z === '${z0 + 1}' && document.querySelector('#readout').dataset.z`, 'the readout at z+1'), String(z0 + 1));
  t.deepEqual(await pixels(page, 0, probes), probes.map(([y, x]) => Array(3).fill(greyOf(value(z0 + 1, y, x)))), 'axial slice after ArrowUp');

  // The overlay on, filled at opacity 1: the palette's colours on labelled voxels.
  await page.key('o');
  seen = await drawn(page, seen);
  const expected = probes.map(([y, x]) => (labelAt(y, x) ? [...labelColours[labelAt(y, x)]!] : Array(3).fill(greyOf(value(z0 + 1, y, x)))));
  t.deepEqual(await pixels(page, 0, probes), expected, 'label overlay, filled');
  t.true(probes.some(([y, x]) => labelAt(y, x) !== 0) && probes.some(([y, x]) => labelAt(y, x) === 0), 'probes on labelled and unlabelled voxels');

  // Outlines: the block's border coloured, its inside grey.
  await page.key('f');
  seen = await drawn(page, seen);
  const [edge, inside] = await pixels(page, 0, [[5, 10], [10, 10]]);
  t.deepEqual(edge, [...labelColours[1]!]);
  t.deepEqual(inside, Array(3).fill(greyOf(value(z0 + 1, 10, 10))));

  // A click sets the cursor: the readout names the class from the model file.
  const box = await page.eval<{ x: number; y: number }>(`(() => { const r = document.querySelector('.view canvas.slice').getBoundingClientRect(); return { x: r.left, y: r.top }; })()`);
  const v0 = await page.eval<{ scale: string; ox: string; oy: string }>(`({ ...document.querySelector('.view').dataset })`);
  await page.click(box.x + Number(v0.ox) + 12.5 * Number(v0.scale), box.y + Number(v0.oy) + 8.5 * Number(v0.scale));
  const text = await page.until<string>(`(() => { const r = document.querySelector('#readout'); return r.dataset.y === '8' && r.dataset.x === '12' && r.textContent.includes('labels') && r.textContent; })()`, 'the readout at the clicked voxel');
  t.regex(text, new RegExp(`z ${z0 + 1} y 8 x 12 \\| image.npy ${value(z0 + 1, 8, 12)} \\| labels 1 cell`));
  t.regex(await page.eval<string>(`document.querySelector('#legend').textContent`), /1 cell.*2 membrane/);

  const foreign = page.requests.filter((r) => !r.startsWith(url) && !r.startsWith('data:') && !r.startsWith('blob:') && r !== 'about:blank');
  t.deepEqual(foreign, [], 'every request goes to the viewer itself (works offline)');
  t.deepEqual(page.consoleErrors, []);
  // The click moved y and x: the coronal and sagittal views read their new planes.
  await drawn(page, seen, [1, 2]);
  const shot = path.join(os.tmpdir(), `segvol-viewer-${process.pid}.png`);
  await page.screenshot(shot);
  t.log(`screenshot: ${shot}`);
  t.true(fs.statSync(shot).size > 10_000);
});

browserTest('the Training tab follows the log: new steps, a validation and its slice, and a new run', async (t) => {
  const log = path.join(dir, 'model.log.jsonl');
  const step = (s: number) => `${JSON.stringify({ step: s, phase: 1, epoch: 1, loss: 1 / s, lr: 0.01, gradNorm: 1, batchSize: 1, voxelsPerSecond: 100 })}\n`;
  fs.writeFileSync(log, [1, 2, 3, 4, 5].map(step).join(''));
  const url = await view(t, ['--log', log]);
  const page = await browser!.open(`${url}/`);
  t.is(await page.until<string>(`document.querySelector('#log-summary').dataset.steps === '5' && document.body.dataset.tab`, '5 steps shown'), 'training');
  const firstPlot = await page.until<string>(`(() => { const i = document.querySelector('#log-plot'); return i.complete && i.naturalWidth > 0 && i.src; })()`, 'the chart');

  fs.appendFileSync(log, [6, 7, 8].map(step).join(''));
  const plane = 16 * 16;
  writeSlicePanels(path.join(dir, 'model.validation.png'), [
    { title: 'input', kind: 'grey', data: new Float32Array(plane).map((_, i) => i), lo: 0, hi: plane },
    { title: 'truth', kind: 'labels', data: new Float32Array(plane).map((_, i) => i % 2) },
    { title: 'prediction', kind: 'labels', data: new Float32Array(plane).fill(1) },
  ], 16, 16);
  fs.appendFileSync(log, `${JSON.stringify({ step: 8, phase: 1, validation: 0.75, metric: 'dice', best: 0.75, bestStep: 8, slice: 'model.validation.png' })}\n`);
  // The file is polled: the steps may show before the validation line; wait for both.
  await page.until(`document.querySelector('#log-summary').textContent.includes('1 validations')`, '8 steps and the validation shown');
  t.regex(await page.eval<string>(`document.querySelector('#log-summary').textContent`), /8 steps, last step 8: loss 0\.125.*1 validations, best dice 0\.75 at step 8/);
  const newPlot = await page.until<string>(`(() => { const i = document.querySelector('#log-plot'); return i.complete && i.naturalWidth > 0 && i.src !== ${JSON.stringify(firstPlot)} && i.src; })()`, 'a redrawn chart');
  t.not(newPlot, firstPlot);
  t.is(await page.until<string>(`(() => { const i = document.querySelector('#val-slice'); return i.complete && i.naturalWidth > 0 && i.dataset.step; })()`, 'the validation slice'), '8');

  // A run from step 0 starts a new log: the page starts over.
  fs.writeFileSync(log, [1, 2].map(step).join(''));
  await page.until(`document.querySelector('#log-summary').dataset.steps === '2'`, 'the new run shown');
  t.pass();
});

browserTest('a 512^3 Zarr: the first paint and a zoomed slice read only the chunks in view, and show their values', async (t) => {
  const store = path.join(dir, 'big.zarr');
  writeBlockStore(store);
  const url = await view(t, [store]);
  const page = await browser!.open(`${url}/?wl=128&ww=256`);
  let seen = await drawn(page);
  const keys = async () => page.eval<string[]>(`fetch('/api/stats?keys=1').then((r) => r.json()).then((s) => s.layers.image.keys)`);
  const first = await keys();
  // The cursor starts at the centre (256, 256, 256): chunk 4 on every axis.
  const onPlanes = (k: string) => { const [z, y, x] = k.split('.').map(Number); return z === 4 || y === 4 || x === 4; };
  t.true(first.length > 0 && first.length <= 3 * 64 - 3 * 8 + 1, `${first.length} chunks`);
  t.deepEqual(first.filter((k) => !onPlanes(k)), [], 'only chunks of the three planes through the cursor');
  t.true(first.length < 512, 'far fewer than the whole volume');

  // Zoom the axial view in twice and move up 64 slices (into chunk row z = 5).
  await page.key('1');
  await page.key('+');
  seen = await drawn(page, [seen[0]!, 0, 0]);
  await page.key('+');
  seen = await drawn(page, [seen[0]!, 0, 0]);
  for (let i = 0; i < 7; ++i) await page.key('PageUp');
  await page.until(`document.querySelector('.view').dataset.index === '326' && document.body.dataset.pending === '0'`, 'the axial view at z = 326');
  const region = (await page.eval<string>(`document.querySelector('.view').dataset.region`)).split(',').map(Number) as [number, number, number, number];
  const crossed = new Set<string>();
  for (let cy = Math.floor(region[0] / 64); cy <= Math.floor((region[1] - 1) / 64); ++cy) for (let cx = Math.floor(region[2] / 64); cx <= Math.floor((region[3] - 1) / 64); ++cx) crossed.add(`5.${cy}.${cx}`);
  const added = (await keys()).filter((k) => !first.includes(k) && k.startsWith('5.'));
  t.true(added.length > 0);
  t.deepEqual(added.filter((k) => !crossed.has(k)), [], `new axial chunks lie in the view's region ${region.join(',')}`);
  t.true(crossed.size < 64, `the zoomed view crosses ${crossed.size} of the plane's 64 chunks`);
  // The centre voxel shows its chunk's value through the window (level 128, width 256).
  const cy = Math.floor((region[0] + region[1]) / 2), cx = Math.floor((region[2] + region[3]) / 2);
  const [rgb] = await pixels(page, 0, [[cy, cx]]);
  const v = blockValue(5, Math.floor(cy / 64), Math.floor(cx / 64));
  t.deepEqual(rgb, Array(3).fill(Math.round((v * 255) / 256)));
});

browserTest('the Evaluation tab shows the scores of segvol evaluate and takes a worst slice to the volume view', async (t) => {
  const truth = path.join(dir, 'truth.npy'), pred = path.join(dir, 'pred.npy'), image = path.join(dir, 'eval-image.npy'), result = path.join(dir, 'result.json');
  const shape = [6, 10, 10];
  const ids = new Float32Array(600).map((_, i) => ((i % 10) < 5 ? 1 : 2));
  const guess = ids.map((v, i) => (Math.floor(i / 100) === 4 && i % 3 === 0 ? 3 - v : Math.floor(i / 100) === 1 && i % 7 === 0 ? 3 - v : v));
  writeVolume(truth, { data: ids, shape, dtype: 'uint8' });
  writeVolume(pred, { data: guess, shape, dtype: 'uint8' });
  writeVolume(image, { data: new Float32Array(600).map((_, i) => i % 17), shape, dtype: 'float32' });
  const r = spawnSync(process.execPath, segvolArgs('evaluate', '--pred', pred, '--truth', truth, '--out', result), { cwd: root, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const scores = JSON.parse(fs.readFileSync(result, 'utf8')) as { overlap: { perClass: Array<{ dice: number }> }; worst: Array<{ axis: number; index: number }> };
  t.is(scores.worst[0]!.index, 4, 'slice 4 has the most errors');
  const url = await view(t, [image, '--pred', pred, '--labels', truth, '--eval', result]);
  const page = await browser!.open(`${url}/?tab=evaluation`);
  await page.until(`document.querySelectorAll('#eval-classes tr').length > 1`, 'the per-class table');
  const dice = await page.eval<string[]>(`[...document.querySelectorAll('#eval-classes tr')].slice(1).map((r) => r.cells[1].textContent)`);
  t.deepEqual(dice, scores.overlap.perClass.map((c) => String(Number(c.dice.toPrecision(4)))));
  await page.eval(`document.querySelector('#eval-worst button').click()`);
  t.is(await page.until<string>(`document.body.dataset.tab === 'volume' && document.querySelector('#readout').dataset.z`, 'the volume view at the worst slice'), '4');
  await drawn(page);
  t.is(await page.eval<string>(`document.querySelector('.view').dataset.index`), '4');
});

browserTest('an OME-Zarr pyramid: the view reads the level that fits it, level 0 at full size, a coarser one zoomed out', async (t) => {
  const ome = path.join(dir, 'pyramid.ome.zarr');
  const levels = [512, 256, 128].map((n, k) => ({ path: String(k), shape: [n, n, n] as [number, number, number], factor: [2 ** k, 2 ** k, 2 ** k] as [number, number, number] }));
  writeOmeGroup(ome, { version: '0.4', name: 'pyramid', spacing: [1, 1, 1], channels: false, downsampling: 'mean', label: false, levels });
  for (const l of levels) {
    const writer = ZarrWriter.create(path.join(ome, l.path), { shape: l.shape, chunks: [64, 64, 64], dtype: 'uint8', compressor: 'zlib', dimensionSeparator: '/' });
    const n = l.shape[0] / 64;
    // Each level's own value: the drawn grey tells which level is on screen.
    const chunk = zlib.deflateSync(Buffer.alloc(64 ** 3, 50 * (Number(l.path) + 1)));
    for (let cz = 0; cz < n; ++cz) for (let cy = 0; cy < n; ++cy) for (let cx = 0; cx < n; ++cx) fs.mkdirSync(path.dirname(writer.chunkPath([cz, cy, cx])), { recursive: true }), fs.writeFileSync(writer.chunkPath([cz, cy, cx]), chunk);
  }
  const url = await view(t, [ome]);
  const page = await browser!.open(`${url}/?wl=128&ww=256`);
  let seen = await drawn(page);
  const keys = () => page.eval<string[]>(`fetch('/api/stats?keys=1').then((r) => r.json()).then((s) => s.layers.image.keys)`);
  const scale = Number(await page.eval<string>(`document.querySelector('.view').dataset.scale`));
  t.true(scale < 1 && scale > 0.5, `512 voxels fit a view of ${Math.round(512 * scale)} pixels`);
  const fitted = await keys();
  t.true(fitted.length > 0 && fitted.every((k) => k.startsWith('0/')), `at ${scale} pixels per voxel, level 0 (each voxel under a pixel): ${fitted.slice(0, 3).join(' ')}`);
  const [centre] = await pixels(page, 0, [[256, 256]]);
  t.deepEqual(centre, Array(3).fill(Math.round((50 * 255) / 256)));

  for (const k of ['1', '2', '3']) {
    await page.key(k);
    await page.key('-');
  }
  seen = await drawn(page, seen);
  const zoomedOut = (await keys()).filter((k) => !fitted.includes(k));
  t.true(zoomedOut.length > 0 && zoomedOut.every((k) => k.startsWith('1/')), `zoomed out, level 1: ${zoomedOut.slice(0, 3).join(' ')}`);
  t.deepEqual(await page.eval<string[]>(`[...document.querySelectorAll('.view')].map((v) => v.dataset.level)`), ['1', '1', '1']);
  const [coarse] = await pixels(page, 0, [[256, 256]]);
  t.deepEqual(coarse, Array(3).fill(Math.round((100 * 255) / 256)));
});

browserTest('several volumes are modalities: m switches the image, each with its own window', async (t) => {
  const shape = [4, 20, 24];
  const t1 = path.join(dir, 't1.nii.gz'), t2 = path.join(dir, 't2.nii.gz');
  writeVolume(t1, { data: new Float32Array(4 * 20 * 24).map((_, i) => i % 24), shape, dtype: 'float32' });
  writeVolume(t2, { data: new Float32Array(4 * 20 * 24).map((_, i) => 1000 + 10 * (Math.floor(i / 24) % 20)), shape, dtype: 'float32' });
  const url = await view(t, [t1, t2]);
  const page = await browser!.open(`${url}/`);
  let seen = await drawn(page);
  t.deepEqual(await page.eval<string[]>(`[...document.querySelectorAll('#modality option')].map((o) => o.textContent)`), ['t1.nii.gz', 't2.nii.gz']);
  const window1 = await page.eval<string[]>(`[document.querySelector('#window-level').value, document.querySelector('#window-width').value]`);
  await page.key('m');
  seen = await drawn(page, seen);
  const window2 = await page.eval<string[]>(`[document.querySelector('#window-level').value, document.querySelector('#window-width').value]`);
  t.true(Number(window2[0]) > 1000, `t2's window from its own values: ${window2.join(', ')}`);
  t.true(Number(window1[0]) < 24, `t1's: ${window1.join(', ')}`);
  // t2 varies along y only: a row is one grey, and lower rows are brighter.
  const [a, b, c] = await pixels(page, 0, [[2, 1], [2, 20], [17, 1]]);
  t.deepEqual(a, b);
  t.true(c![0]! > a![0]!);
  t.regex(await page.until<string>(`document.querySelector('#readout').textContent.includes('t2') && document.querySelector('#readout').textContent`, 'the readout'), /t1\.nii\.gz \d+ \| t2\.nii\.gz \d+/);
});

browserTest('the picture in docs/viewer.md: a synthetic EM stack with its segments drawn over it', async (t) => {
  const em = syntheticEm({ depth: 32, height: 160, width: 160, seed: 4 });
  const image = path.join(dir, 'em.nii.gz'), segments = path.join(dir, 'segments.nii.gz'), membrane = path.join(dir, 'membrane.nii.gz');
  writeVolume(image, { data: em.image, shape: em.shape, dtype: 'float32' });
  writeVolume(segments, { data: Float32Array.from(em.segments), shape: em.shape, dtype: 'float32' });
  writeVolume(membrane, { data: em.labels, shape: em.shape, dtype: 'float32' });
  const url = await view(t, [image, '--pred', segments, '--labels', membrane]);
  const page = await browser!.open(`${url}/?overlay=pred&opacity=0.35&z=20&y=70&x=90`);
  await drawn(page);
  t.regex(await page.until<string>(`document.querySelector('#readout').dataset.z === '20' && document.querySelector('#readout').textContent`, 'the readout'), /z 20 y 70 x 90 \| em\.nii\.gz -?\d.* \| labels [01] \| pred \d+/);
  const shot = path.join(os.tmpdir(), `segvol-viewer-em-${process.pid}.png`);
  await page.screenshot(shot);
  const png = fs.readFileSync(shot);
  t.is(png.readUInt32BE(16), 1280, 'the window width');
  t.log(`screenshot: ${shot}`);
  if (process.env.SEGVOL_UPDATE_DOCS === '1') fs.copyFileSync(shot, path.join(root, 'docs', 'images', 'viewer.png'));
});

browserTest('anisotropic voxels, panning, and an overlay read at another pyramid level than the image', async (t) => {
  // (z, y, x) spacing (2, 1, 1): the coronal and sagittal views draw rows twice as tall.
  const shape = [8, 24, 32];
  const data = Float32Array.from({ length: 8 * 24 * 32 }, (_, i) => (i * 13) % 200);
  const thick = path.join(dir, 'thick.nii.gz');
  writeVolume(thick, { data, shape, dtype: 'float32', spacing: [2, 1, 1] });
  let url = await view(t, [thick]);
  let page = await browser!.open(`${url}/?wl=100&ww=200&z=3&y=10&x=12`);
  let seen = await drawn(page);
  t.is(await page.eval<string>(`document.querySelectorAll('.view')[1].dataset.aspect`), '2');
  const at = (z: number, y: number, x: number) => Array(3).fill(greyOf(data[(z * 24 + y) * 32 + x]!));
  const coronal: Array<[number, number]> = [[0, 0], [3, 17], [7, 31]];
  t.deepEqual(await pixels(page, 1, coronal), coronal.map(([z, x]) => at(z, 10, x)), 'coronal rows at twice the height');
  // Drag the axial view 37 px right and 23 down: the voxels move with it.
  const box = await page.eval<{ x: number; y: number; w: number; h: number }>(`(() => { const r = document.querySelector('.view canvas.slice').getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; })()`);
  const before = await page.eval<{ ox: string; oy: string }>(`({ ...document.querySelector('.view').dataset })`);
  const [sx, sy] = [box.x + box.w / 2, box.y + box.h / 2];
  await page.send('Input.dispatchMouseEvent', { type: 'mousePressed', x: sx, y: sy, button: 'left', clickCount: 1 });
  for (const k of [1, 2, 3]) await page.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x: sx + (37 * k) / 3, y: sy + (23 * k) / 3, button: 'left' });
  await page.send('Input.dispatchMouseEvent', { type: 'mouseReleased', x: sx + 37, y: sy + 23, button: 'left', clickCount: 1 });
  await page.until(`document.querySelector('.view').dataset.ox === '${Number(before.ox) + 37}' && document.body.dataset.pending === '0'`, 'the axial view panned');
  t.is(await page.eval<string>(`document.querySelector('.view').dataset.oy`), String(Number(before.oy) + 23));
  const axial: Array<[number, number]> = [[0, 0], [10, 12], [23, 20]];
  t.deepEqual(await pixels(page, 0, axial), axial.map(([y, x]) => at(3, y, x)), 'the panned axial view');
  t.is(await page.eval<string>(`document.querySelector('#readout').dataset.y`), '10', 'a drag does not move the cursor');

  // A two-level pyramid under labels of level 0 only: zoomed out, the image comes from level 1 and
  // the labels every other voxel; every image pixel still gets its label (the first row too).
  const ome = path.join(dir, 'two.ome.zarr');
  const levels = [{ path: '0', shape: [16, 128, 128] as [number, number, number], factor: [1, 1, 1] as [number, number, number] },
    { path: '1', shape: [8, 64, 64] as [number, number, number], factor: [2, 2, 2] as [number, number, number] }];
  writeOmeGroup(ome, { version: '0.4', name: 'two', spacing: [1, 1, 1], channels: false, downsampling: 'mean', label: false, levels });
  for (const l of levels) await writeZarr(path.join(ome, l.path), new Float32Array(l.shape[0] * l.shape[1] * l.shape[2]).fill(100), l.shape, { chunks: [8, 32, 32] });
  const labels = path.join(dir, 'two-labels.npy');
  writeVolume(labels, { data: Float32Array.from({ length: 16 * 128 * 128 }, (_, i) => (Math.floor(i / 128) % 128 < 64 ? 1 : 2)), shape: [16, 128, 128], dtype: 'uint8' });
  url = await view(t, [ome, '--labels', labels]);
  page = await browser!.open(`${url}/?wl=100&ww=200&opacity=1&overlay=labels`);
  seen = await drawn(page);
  for (let i = 0; i < 3; ++i) {
    await page.key('-');
    seen = await drawn(page, seen, [0]);
  }
  t.is(await page.eval<string>(`document.querySelector('.view').dataset.level`), '1', 'the image at level 1');
  const rows: Array<[number, number]> = [[0, 0], [0, 127], [63, 5], [64, 5], [127, 127]];
  t.deepEqual(await pixels(page, 0, rows), rows.map(([y]) => [...labelColours[y < 64 ? 1 : 2]!]), 'labels over every pixel, the first row included');
});

browserTest('a probability map of several classes: class 1 drawn by default, another chosen in the control', async (t) => {
  const shape = [2, 10, 12];
  const image = path.join(dir, 'prob-image.npy'), prob = path.join(dir, 'prob.npy');
  writeVolume(image, { data: new Float32Array(240).fill(100), shape, dtype: 'float32' });
  // Class 1 certain in the left half, class 2 in the right half.
  const p = new Float32Array(3 * 240);
  for (let i = 0; i < 240; ++i) p[(i % 12 < 6 ? 1 : 2) * 240 + i] = 1;
  writeVolume(prob, { data: p, shape: [3, ...shape], dtype: 'float32' });
  const url = await view(t, [image, '--prob', prob]);
  const page = await browser!.open(`${url}/?wl=100&ww=200&opacity=1`);
  let seen = await drawn(page);
  const red = [255, 60, 40], grey = Array(3).fill(greyOf(100));
  t.deepEqual(await pixels(page, 0, [[5, 2], [5, 9]]), [red, grey], 'class 1 on the left');
  await page.eval(`(() => { const s = document.querySelector('#prob-class'); s.value = '2'; s.dispatchEvent(new Event('change')); })()`);
  seen = await drawn(page, seen);
  t.deepEqual(await pixels(page, 0, [[5, 2], [5, 9]]), [grey, red], 'class 2 on the right');
  t.false(await page.eval<boolean>(`document.querySelector('#prob-class-label').hidden`));
});
