// @ts-check
// The viewer page: three orthogonal views with a shared cursor, overlays and windowing,
// and the Training and Evaluation tabs. Every volume read goes through the server's
// /api/slice for the region in view, so only the chunks that region crosses are read.
import { chunkStatus, fetchSlice, getJson, levelRegion, planeAxes } from './api.js';
import { chooseLevel, classColour, compose, percentileWindow, readoutText } from './render.js';
import { followLog, showEvaluation } from './tabs.js';

/** @typedef {import('./render.js').Slice} Slice */
/** @typedef {{ id: string, role: string, name: string, channels: string[], shape: number[], spacing: number[] | null, chunks: number[] | null, levels: { shape: number[], factor: number[] }[] }} LayerInfo */
/** @typedef {{ shape: number[] | null, layers: LayerInfo[], classes: string[], palette: number[][], log: boolean, evaluation: boolean }} Info */

const params = new URLSearchParams(location.search);
const $ = (/** @type {string} */ s) => /** @type {HTMLElement} */ (document.querySelector(s));
const axisNames = ['z', 'y', 'x'];

/** @type {Info} */
let info;
const state = {
  cursor: [0, 0, 0],
  focus: 0,
  /** Index into imageChoices. */
  image: 0,
  /** @type {Map<string, import('./render.js').Window>} */
  windows: new Map(),
  overlay: 'none',
  overlayOn: true,
  opacity: 0.5,
  outline: false,
  /** @type {number | undefined} the probability map's class shown, once chosen */
  probClass: undefined,
};
/** @type {{ layer: LayerInfo, channel: number }[]} */
let imageChoices = [];
let pending = 0;

function setPending(/** @type {number} */ delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
}


class View {
  constructor(/** @type {HTMLElement} */ element) {
    this.element = element;
    this.axis = Number(element.dataset.axis);
    this.canvas = /** @type {HTMLCanvasElement} */ (element.querySelector('canvas.slice'));
    this.cursorCanvas = /** @type {HTMLCanvasElement} */ (element.querySelector('canvas.cursor'));
    this.scale = 0;
    this.ox = 0;
    this.oy = 0;
    this.token = 0;
    /** @type {AbortController | undefined} the requests of the render in flight */
    this.abort = undefined;
    /** Completed draws: tests wait for the next one instead of sleeping. */
    this.drawn = 0;
    const [rowAxis, colAxis] = /** @type {[number, number]} */ (planeAxes[this.axis]);
    this.rowAxis = rowAxis;
    this.colAxis = colAxis;
  }

  get rows() { return info.shape?.[this.rowAxis] ?? 1; }
  get cols() { return info.shape?.[this.colAxis] ?? 1; }
  /** Rows are drawn taller or shorter than columns by the voxel size's ratio. */
  get aspect() {
    const s = imageChoices[state.image]?.layer.spacing;
    return s ? (s[this.rowAxis] ?? 1) / (s[this.colAxis] ?? 1) : 1;
  }

  fit() {
    const w = this.element.clientWidth, h = this.element.clientHeight;
    for (const c of [this.canvas, this.cursorCanvas]) { c.width = w; c.height = h; }
    const fit = Math.min(w / this.cols, h / (this.rows * this.aspect));
    // Whole screen pixels per voxel where they fit: every voxel then covers the same square.
    this.scale = fit >= 1 ? Math.floor(fit) : fit;
    this.ox = Math.round((w - this.cols * this.scale) / 2);
    this.oy = Math.round((h - this.rows * this.scale * this.aspect) / 2);
  }

  zoom(/** @type {number} */ by, /** @type {number} */ sx, /** @type {number} */ sy) {
    const next = by > 1 && this.scale >= 1 ? Math.round(this.scale * by) : this.scale * by;
    if (next > 256 || next < 1 / 256) return;
    const vx = (sx - this.ox) / this.scale, vy = (sy - this.oy) / (this.scale * this.aspect);
    this.scale = next;
    this.ox = Math.round(sx - vx * this.scale);
    this.oy = Math.round(sy - vy * this.scale * this.aspect);
    this.render();
  }

  /** Level-0 voxel (row, col) under a screen point. */
  voxelAt(/** @type {number} */ sx, /** @type {number} */ sy) {
    return [Math.floor((sy - this.oy) / (this.scale * this.aspect)), Math.floor((sx - this.ox) / this.scale)];
  }

  async render() {
    const choice = imageChoices[state.image];
    if (!choice || !info.shape) return;
    const token = ++this.token;
    const w = this.canvas.width, h = this.canvas.height, rowScale = this.scale * this.aspect;
    const clamp = (/** @type {number} */ v, /** @type {number} */ n) => Math.max(0, Math.min(n, v));
    const region = [clamp(Math.floor(-this.oy / rowScale), this.rows), clamp(Math.ceil((h - this.oy) / rowScale), this.rows),
      clamp(Math.floor(-this.ox / this.scale), this.cols), clamp(Math.ceil((w - this.ox) / this.scale), this.cols)];
    this.drawCursor();
    if (region[0] >= region[1] || region[2] >= region[3]) {
      this.canvas.getContext('2d')?.clearRect(0, 0, w, h);
      return;
    }
    const overlayLayer = state.overlayOn ? info.layers.find((l) => l.id === state.overlay) : undefined;
    const levelOf = (/** @type {LayerInfo} */ l) => chooseLevel(l.levels, this.rowAxis, this.colAxis, rowScale, this.scale);
    // Voxels much smaller than a pixel even at the coarsest level: every step-th of them.
    const stepOf = (/** @type {LayerInfo} */ l, /** @type {number} */ level) => {
      const f = l.levels[level]?.factor ?? [1, 1, 1];
      return Math.max(1, Math.floor(Math.min(1 / ((f[this.rowAxis] ?? 1) * rowScale), 1 / ((f[this.colAxis] ?? 1) * this.scale))));
    };
    this.abort?.abort();
    const abort = this.abort = new AbortController();
    const imageLevel = levelOf(choice.layer);
    // The overlay covers exactly the image's pixels, which may reach past the view's region at a coarse level.
    const covered = levelRegion(choice.layer, this.axis, imageLevel, region);
    const overlayRegion = [covered.r0 * covered.fr, Math.min(this.rows, covered.r1 * covered.fr), covered.c0 * covered.fc, Math.min(this.cols, covered.c1 * covered.fc)];
    setPending(1);
    try {
      const overlayLevel = overlayLayer ? levelOf(overlayLayer) : 0;
      const [image, over] = await Promise.all([
        fetchSlice(choice.layer, choice.channel, this.axis, state.cursor[this.axis] ?? 0, imageLevel, region, stepOf(choice.layer, imageLevel), abort.signal),
        overlayLayer ? fetchSlice(overlayLayer, overlayLayer.role === 'prob' ? probChannel(overlayLayer) : 0, this.axis, state.cursor[this.axis] ?? 0, overlayLevel, overlayRegion,
          stepOf(overlayLayer, overlayLevel), abort.signal) : null,
      ]);
      if (token !== this.token) return;
      const key = `${choice.layer.id}/${choice.channel}`;
      if (!state.windows.has(key)) {
        const wl = Number(params.get('wl')), ww = Number(params.get('ww'));
        state.windows.set(key, params.has('wl') && params.has('ww') ? { level: wl, width: ww } : percentileWindow(image.data));
        showWindow();
      }
      const pixels = compose(image, /** @type {import('./render.js').Window} */ (state.windows.get(key)), over && overlayLayer ? {
        kind: overlayLayer.role === 'prob' ? 'prob' : 'labels', slice: over, opacity: state.opacity, outline: state.outline, palette: info.palette,
      } : null);
      const offscreen = new OffscreenCanvas(image.cols, image.rows);
      offscreen.getContext('2d')?.putImageData(pixels, 0, 0);
      const ctx = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext('2d', { willReadFrequently: true }));
      ctx.imageSmoothingEnabled = false;
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, w, h);
      const [pr, pc] = image.pitch, [or, oc] = image.origin;
      ctx.drawImage(offscreen, this.ox + (oc ?? 0) * this.scale, this.oy + (or ?? 0) * rowScale, image.cols * (pc ?? 1) * this.scale, image.rows * (pr ?? 1) * rowScale);
      Object.assign(this.element.dataset, { region: region.join(','), level: String(image.level), scale: String(this.scale), aspect: String(this.aspect), ox: String(this.ox), oy: String(this.oy),
        index: String(state.cursor[this.axis]), drawn: String(++this.drawn) });
    } catch (error) {
      // A newer render took over: not an error.
      if (/** @type {Error} */ (error).name !== 'AbortError') $('#readout').textContent = String(/** @type {Error} */ (error).message);
    } finally {
      setPending(-1);
      if (pending === 0) refreshStats();
    }
  }

  drawCursor() {
    const ctx = this.cursorCanvas.getContext('2d');
    if (!ctx) return;
    ctx.clearRect(0, 0, this.cursorCanvas.width, this.cursorCanvas.height);
    const x = this.ox + ((state.cursor[this.colAxis] ?? 0) + 0.5) * this.scale;
    const y = this.oy + ((state.cursor[this.rowAxis] ?? 0) + 0.5) * this.scale * this.aspect;
    ctx.strokeStyle = 'rgba(224, 160, 48, 0.7)';
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(x, 0); ctx.lineTo(x, this.cursorCanvas.height);
    ctx.moveTo(0, y); ctx.lineTo(this.cursorCanvas.width, y);
    ctx.stroke();
  }
}

/** A probability map's class shown: the one chosen (control or URL), else class 1 (the first after background) when there are several. */
function probChannel(/** @type {LayerInfo} */ layer) {
  const chosen = state.probClass ?? Number(params.get('class'));
  if ((state.probClass !== undefined || params.has('class')) && Number.isInteger(chosen) && chosen >= 0 && chosen < layer.channels.length) return chosen;
  return layer.channels.length > 1 ? 1 : 0;
}

/** @type {View[]} */
let views = [];

/**
 * Redraws after a change: the views whose plane moved (the axes in `moved`; every view when
 * not given: a window, overlay or image change) read their slices again, the others only
 * redraw the cursor lines.
 * @param {number[]} [moved]
 */
function renderAll(moved) {
  for (const v of views) {
    if (!moved || moved.includes(v.axis)) v.render();
    else v.drawCursor();
  }
  readout();
}

function moveCursor(/** @type {number} */ axis, /** @type {number} */ to) {
  const n = info.shape?.[axis] ?? 1;
  const next = Math.max(0, Math.min(n - 1, to));
  if (next === state.cursor[axis]) return;
  state.cursor[axis] = next;
  renderAll([axis]);
}

async function readout() {
  if (!info.shape) return;
  const [z, y, x] = state.cursor;
  const el = $('#readout');
  try {
    const { values } = await getJson(`/api/voxel?z=${z}&y=${y}&x=${x}`);
    if (state.cursor[0] !== z || state.cursor[1] !== y || state.cursor[2] !== x) return;
    el.textContent = readoutText(info.layers, info.classes, [z ?? 0, y ?? 0, x ?? 0], values);
    // Set with the text, so that a reader of data-z/y/x sees the text of that voxel.
    Object.assign(el.dataset, { z: String(z), y: String(y), x: String(x) });
  } catch (error) {
    el.textContent = String(/** @type {Error} */ (error).message);
  }
}

async function refreshStats() {
  $('#stats').textContent = await chunkStatus(info.layers.some((l) => l.chunks)).catch(() => '');
}

function showWindow() {
  const choice = imageChoices[state.image];
  const w = choice && state.windows.get(`${choice.layer.id}/${choice.channel}`);
  if (!w) return;
  /** @type {HTMLInputElement} */ ($('#window-level')).value = String(Number(w.level.toPrecision(6)));
  /** @type {HTMLInputElement} */ ($('#window-width')).value = String(Number(w.width.toPrecision(6)));
}

function showLegend() {
  const legend = $('#legend');
  legend.replaceChildren();
  const layer = info.layers.find((l) => l.id === state.overlay);
  if (!layer || layer.role === 'prob') return;
  if (info.classes.length === 0) {
    // Object ids (or classes without names): colours repeat every eight ids.
    legend.textContent = 'ids coloured by id (the palette repeats every 8; give --model for class names)';
    return;
  }
  const count = info.classes.length;
  for (let k = 1; k < count; ++k) {
    const span = document.createElement('span');
    const [r, g, b] = classColour(info.palette, k);
    span.style.setProperty('--swatch', `rgb(${r}, ${g}, ${b})`);
    span.textContent = `${k}${info.classes[k] ? ` ${info.classes[k]}` : ''}`;
    legend.append(span);
  }
}

function setupControls() {
  const modality = /** @type {HTMLSelectElement} */ ($('#modality'));
  imageChoices.forEach((c, i) => modality.add(new Option(c.layer.channels[c.channel] ?? c.layer.name, String(i))));
  modality.onchange = () => { state.image = Number(modality.value); showWindow(); renderAll(); };
  const overlay = /** @type {HTMLSelectElement} */ ($('#overlay'));
  overlay.add(new Option('none', 'none'));
  for (const l of info.layers.filter((l) => l.role !== 'image')) overlay.add(new Option(`${l.role}: ${l.name}`, l.id));
  state.overlay = params.get('overlay') ?? (info.layers.find((l) => l.role === 'pred') ?? info.layers.find((l) => l.role === 'labels') ?? info.layers.find((l) => l.role === 'prob'))?.id ?? 'none';
  overlay.value = state.overlay;
  overlay.onchange = () => { state.overlay = overlay.value; state.overlayOn = true; showLegend(); renderAll(); };
  // A probability map of several classes: which class is drawn.
  const prob = info.layers.find((l) => l.role === 'prob');
  if (prob && prob.channels.length > 1) {
    const select = /** @type {HTMLSelectElement} */ ($('#prob-class'));
    prob.channels.forEach((_, k) => select.add(new Option(info.classes[k] ? `${k} ${info.classes[k]}` : String(k), String(k))));
    select.value = String(probChannel(prob));
    $('#prob-class-label').hidden = false;
    select.onchange = () => { state.probClass = Number(select.value); renderAll(); };
  }
  const opacity = /** @type {HTMLInputElement} */ ($('#opacity'));
  state.opacity = params.has('opacity') ? Number(params.get('opacity')) : 0.5;
  opacity.value = String(state.opacity);
  opacity.oninput = () => { state.opacity = Number(opacity.value); renderAll(); };
  const mode = /** @type {HTMLSelectElement} */ ($('#overlay-mode'));
  state.outline = params.get('mode') === 'outline';
  mode.value = state.outline ? 'outline' : 'fill';
  mode.onchange = () => { state.outline = mode.value === 'outline'; renderAll(); };
  for (const id of ['#window-level', '#window-width']) {
    $(id).onchange = () => {
      const choice = imageChoices[state.image];
      if (!choice) return;
      state.windows.set(`${choice.layer.id}/${choice.channel}`, {
        level: Number(/** @type {HTMLInputElement} */ ($('#window-level')).value), width: Math.max(1e-6, Number(/** @type {HTMLInputElement} */ ($('#window-width')).value)),
      });
      renderAll();
    };
  }
  showLegend();
}

function focusView(/** @type {number} */ k) {
  state.focus = k;
  views.forEach((v, i) => v.element.classList.toggle('focused', i === k));
}

function setupNavigation() {
  const focus = focusView;
  focus(0);
  for (const [k, view] of views.entries()) {
    /** @type {{ x: number, y: number, moved: boolean } | null} */
    let drag = null;
    view.element.addEventListener('mousedown', (e) => { focus(k); drag = { x: e.clientX, y: e.clientY, moved: false }; });
    window.addEventListener('mousemove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 3) return;
      drag.moved = true;
      view.ox += dx; view.oy += dy; drag.x = e.clientX; drag.y = e.clientY;
      view.render();
    });
    window.addEventListener('mouseup', (e) => {
      if (drag && !drag.moved) {
        const box = view.canvas.getBoundingClientRect();
        const [r, c] = view.voxelAt(e.clientX - box.left, e.clientY - box.top);
        if (r >= 0 && c >= 0 && r < view.rows && c < view.cols) {
          state.cursor[view.rowAxis] = r;
          state.cursor[view.colAxis] = c;
          renderAll([view.rowAxis, view.colAxis]);
        }
      }
      drag = null;
    });
    view.element.addEventListener('wheel', (e) => {
      e.preventDefault();
      focus(k);
      if (e.ctrlKey) {
        const box = view.canvas.getBoundingClientRect();
        view.zoom(e.deltaY < 0 ? 2 : 0.5, e.clientX - box.left, e.clientY - box.top);
      } else moveCursor(view.axis, (state.cursor[view.axis] ?? 0) + (e.deltaY < 0 ? 1 : -1));
    }, { passive: false });
  }
  window.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    const view = views[state.focus];
    if (!view) return;
    const step = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[e.key];
    if (step !== undefined) { e.preventDefault(); moveCursor(view.axis, (state.cursor[view.axis] ?? 0) + step); return; }
    if (e.key === '+' || e.key === '=') view.zoom(2, view.canvas.width / 2, view.canvas.height / 2);
    else if (e.key === '-') view.zoom(0.5, view.canvas.width / 2, view.canvas.height / 2);
    else if (e.key === '1' || e.key === '2' || e.key === '3') focus(Number(e.key) - 1);
    else if (e.key === 'o') { state.overlayOn = !state.overlayOn; renderAll(); }
    else if (e.key === 'f') {
      state.outline = !state.outline;
      /** @type {HTMLSelectElement} */ ($('#overlay-mode')).value = state.outline ? 'outline' : 'fill';
      renderAll();
    } else if (e.key === 'l') {
      const ids = ['none', ...info.layers.filter((l) => l.role !== 'image').map((l) => l.id)];
      state.overlay = ids[(ids.indexOf(state.overlay) + 1) % ids.length] ?? 'none';
      /** @type {HTMLSelectElement} */ ($('#overlay')).value = state.overlay;
      showLegend();
      renderAll();
    } else if (e.key === 'm' && imageChoices.length > 1) {
      state.image = (state.image + 1) % imageChoices.length;
      /** @type {HTMLSelectElement} */ ($('#modality')).value = String(state.image);
      showWindow();
      renderAll();
    }
  });
  window.addEventListener('resize', () => { for (const v of views) v.fit(); renderAll(); });
}

function showTab(/** @type {string} */ name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', /** @type {HTMLElement} */ (b).dataset.tab === name);
  for (const tab of ['volume', 'training', 'evaluation']) $(`#tab-${tab}`).hidden = tab !== name;
  document.body.dataset.tab = name;
  if (name === 'volume') { for (const v of views) v.fit(); renderAll(); }
}

async function main() {
  info = await getJson('/api/info');
  imageChoices = info.layers.filter((l) => l.role === 'image').flatMap((layer) => layer.channels.map((_, channel) => ({ layer, channel })));
  if (!imageChoices.length && info.layers[0]) imageChoices = [{ layer: info.layers[0], channel: 0 }];
  // The URL's cursor, clamped to the volume; the centre where it gives none.
  if (info.shape) {
    state.cursor = info.shape.map((n, a) => {
      const v = Number(params.get(axisNames[a] ?? ''));
      return params.has(axisNames[a] ?? '') && Number.isInteger(v) ? Math.max(0, Math.min(n - 1, v)) : Math.floor(n / 2);
    });
  }
  views = [...document.querySelectorAll('.view')].map((e) => new View(/** @type {HTMLElement} */ (e)));
  for (const b of document.querySelectorAll('#tabs button')) {
    const tab = /** @type {HTMLElement} */ (b).dataset.tab ?? 'volume';
    /** @type {HTMLButtonElement} */ (b).disabled = (tab === 'training' && !info.log) || (tab === 'evaluation' && !info.evaluation) || (tab === 'volume' && !info.shape);
    b.addEventListener('click', () => showTab(tab));
  }
  setupControls();
  setupNavigation();
  if (info.log) followLog();
  if (info.evaluation) await showEvaluation(info.classes, (axis, index) => { showTab('volume'); focusView(axis); moveCursor(axis, index); });
  showTab(params.get('tab') ?? (info.shape ? 'volume' : info.log ? 'training' : 'evaluation'));
  document.body.dataset.ready = 'true';
}

main().catch((error) => { $('#readout').textContent = String(error.message ?? error); document.body.dataset.ready = 'error'; });
