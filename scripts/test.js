#!/usr/bin/env node
// `npm test`: type-check and build the TypeScript, run the test suite, then build
// the emulated-CUDA addon and run the CUDA tests on it. Both suites always run,
// whatever the first gives, and the counts of both are printed at the end; the
// exit status is non-zero if anything failed or a suite could not run.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
// ava's package exports list neither its CLI nor its package.json: take the CLI from node_modules.
const ava = path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');

/** Runs a command, echoing its output, and returns its status and everything it printed. */
function run(command, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { text += d; process.stderr.write(d); });
    child.on('close', (status) => resolve({ status: status ?? 1, text }));
  });
}

function counts(text) {
  // ava's summary is at the end; a test title could hold the same words, so take the last match.
  const grab = (word) => {
    const all = [...text.matchAll(new RegExp(`^\\s*(\\d+) (?:tests? )?${word}$`, 'gm'))];
    return all.length ? Number(all[all.length - 1][1]) : 0;
  };
  // When a test fails ava prints no 'N tests passed' line: count the ticks instead.
  const ticks = (text.match(/^\s*✔ /gm) || []).length;
  return { passed: grab('passed') || ticks, failed: grab('failed') + grab('uncaught exceptions?') + grab('unhandled rejections?'), skipped: grab('skipped') };
}

async function main() {
  const results = [];
  console.log('== type-check and build the TypeScript (tsc)');
  // A clean dist/: files of moved sources would shadow the new ones (the README test runs dist/ as a user would).
  require('node:fs').rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) results.push({ suite: 'typescript', status: tsc.status ?? 1, passed: 0, failed: 1, skipped: 0, note: 'type errors' });
  // The viewer's page is plain JavaScript (no build step), type-checked from its JSDoc.
  const page = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'lib/cli/viewer/assets/tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (page.status !== 0) results.push({ suite: 'viewer page', status: page.status ?? 1, passed: 0, failed: 1, skipped: 0, note: 'type errors in lib/cli/viewer/assets' });

  console.log('== the test suite (ava)');
  const main = await run(process.execPath, [ava]);
  results.push({ suite: 'main', status: main.status, ...counts(main.text) });

  console.log('== the CUDA tests on the emulated build (SEGVOL_CUDA=EMULATED)');
  const build = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js'), '--emulated'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) {
    results.push({ suite: 'emulated', status: 1, passed: 0, failed: 0, skipped: 0, note: 'the emulated addon did not build' });
  } else {
    const emulated = await run(process.execPath, [ava, 'test/cuda.test.ts', 'test/cuda_precision.test.ts', 'test/pyramid.test.ts', 'test/distributed.test.ts'],
      { SEGVOL_ADDON: 'build-emulated/Release/segvol.node', SEGVOL_REQUIRE_CUDA: '1' });
    results.push({ suite: 'emulated', status: emulated.status, ...counts(emulated.text) });
  }

  console.log('');
  for (const r of results) {
    console.log(`${r.suite}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${r.note ? ` (${r.note})` : ''}${r.status ? ' (FAILED)' : ''}`);
  }
  const total = results.reduce((t, r) => ({ passed: t.passed + r.passed, failed: t.failed + r.failed, skipped: t.skipped + r.skipped }),
    { passed: 0, failed: 0, skipped: 0 });
  console.log(`tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
  process.exitCode = results.some((r) => r.status !== 0) ? 1 : 0;
}

void main();
