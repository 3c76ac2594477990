// @ts-check
// The viewer's Training and Evaluation tabs. Charts are PNGs drawn by the server with the
// same code as `segvol plot` and `segvol evaluate --plot`: the page only places them.

import { getJson } from './api.js';

const $ = (/** @type {string} */ s) => /** @type {HTMLElement} */ (document.querySelector(s));
const axisNames = ['z', 'y', 'x'];

/** The Training tab: a summary, the chart and the latest validation slice, pushed by the server as the log grows. */
export function followLog() {
  const events = new EventSource('/api/log/events');
  events.addEventListener('summary', (e) => {
    const s = JSON.parse(/** @type {MessageEvent} */ (e).data);
    const summary = $('#log-summary');
    summary.dataset.version = String(s.version);
    summary.dataset.steps = String(s.steps);
    const best = s.best ? `, best ${s.metric} ${Number(s.best.value.toPrecision(4))} at step ${s.best.step}` : '';
    summary.textContent = (s.steps === 0 ? 'waiting for the first step'
      : `${s.steps} steps, last step ${s.lastStep}: loss ${Number(s.lastLoss.toPrecision(4))}, learning rate ${s.lastLr}; ${s.validations} validations${best}`) +
      (s.error ? ` (a line was skipped: ${s.error})` : '');
    const plot = /** @type {HTMLImageElement} */ ($('#log-plot'));
    if (s.steps > 0) plot.src = `/api/log/plot.png?v=${s.version}`;
    else plot.removeAttribute('src');
    const slice = /** @type {HTMLImageElement} */ ($('#val-slice'));
    if (s.sliceStep !== null) {
      slice.src = `/api/log/validation.png?v=${s.sliceStep}-${s.version}`;
      slice.dataset.step = String(s.sliceStep);
      $('#val-caption').textContent = `validation at step ${s.sliceStep}: input | truth | prediction`;
    }
  });
}

/**
 * The Evaluation tab: the scores of `segvol evaluate --out`, the per-class table, the Rand
 * curves, and the slices with the most errors as buttons that take the volume view there.
 * @param {string[]} classes @param {(axis: number, index: number) => void} goTo
 */
export async function showEvaluation(classes, goTo) {
  const result = await getJson('/api/evaluation');
  const f = (/** @type {unknown} */ v) => (typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v));
  const lines = [];
  for (const [key, value] of Object.entries(result)) {
    if (typeof value === 'number') lines.push(`${key} ${f(value)}`);
    else if (value && typeof value === 'object' && !Array.isArray(value) && key !== 'overlap') {
      const scalars = Object.entries(value).filter(([, v]) => typeof v === 'number');
      if (scalars.length) lines.push(`${key}: ${scalars.map(([k, v]) => `${k} ${f(v)}`).join(', ')}`);
    }
  }
  $('#eval-summary').textContent = lines.join(' · ') || 'evaluation';
  const table = /** @type {HTMLTableElement} */ ($('#eval-classes'));
  table.replaceChildren();
  const perClass = result.overlap?.perClass;
  if (Array.isArray(perClass)) {
    const head = table.insertRow();
    for (const h of ['class', 'dice', 'jaccard', 'ppv', 'sensitivity', 'avd %']) head.append(Object.assign(document.createElement('th'), { textContent: h }));
    perClass.forEach((c, k) => {
      const row = table.insertRow();
      row.dataset.class = String(k);
      for (const v of [`${k}${classes[k] ? ` ${classes[k]}` : ''}`, c.dice, c.jaccard, c.ppv, c.sensitivity, c.avd]) row.insertCell().textContent = typeof v === 'number' ? f(v) : String(v);
    });
  }
  const worst = $('#eval-worst');
  worst.replaceChildren();
  if (Array.isArray(result.worst) && result.worst.length) {
    worst.append('slices with the most errors: ');
    for (const w of result.worst) {
      const b = document.createElement('button');
      b.textContent = w.measure === 'adapted Rand error' ? `${axisNames[w.axis]} ${w.index} (adapted Rand error ${Number(w.error.toPrecision(3))})`
        : `${axisNames[w.axis]} ${w.index} (${(100 * w.error).toFixed(1)}% wrong)`;
      b.dataset.axis = String(w.axis);
      b.dataset.index = String(w.index);
      b.onclick = () => goTo(w.axis, w.index);
      worst.append(b);
    }
  }
  if (result.randThreshold?.curve || result.randWatershed?.curve) {
    const img = /** @type {HTMLImageElement} */ ($('#rand-plot'));
    img.src = '/api/evaluation/rand.png';
    img.hidden = false;
  }
}

