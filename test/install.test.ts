// The install step's toolchain check: a missing piece fails with one message
// that names it and the command that installs it (before CMake runs at all).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

test('a missing cmake or oneDNN is named, with the command that installs it', (t) => {
  // A PATH holding only node: cmake and the compiler are "missing".
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-path-'));
  fs.symlinkSync(process.execPath, path.join(binDir, 'node'));
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-native.js')], {
    env: { PATH: binDir },
    encoding: 'utf8',
  });
  t.is(r.status, 1);
  t.regex(r.stderr, /cannot build the native addon: missing cmake, a C\+\+17 compiler \(g\+\+\)/);
  t.regex(r.stderr, /apt-get install -y cmake g\+\+ libdnnl-dev/);
  const ranCmake = /-- Configuring|Building/.test(r.stdout);
  t.false(ranCmake, 'stopped before running the build');
});

test('DNNL_ROOT pointing where no oneDNN is fails, naming it, instead of silently using another oneDNN', (t) => {
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-native.js')], {
    env: { ...process.env, DNNL_ROOT: '/nonexistent/onednn' },
    encoding: 'utf8',
  });
  t.is(r.status, 1);
  t.regex(r.stderr, /DNNL_ROOT is set to '\/nonexistent\/onednn', which holds no oneDNN/);
  t.regex(r.stderr, /or unset DNNL_ROOT to use the system's oneDNN/);
  t.false(/-- Configuring|Building/.test(r.stdout), 'stopped before running the build');
});

test('the first require without a built addon says how to build it, with a command that does', (t) => {
  const root = path.join(__dirname, '..');
  const entry = fs.existsSync(path.join(root, 'dist', 'lib', 'index.js')) ? './dist/lib/index.js' : './lib/index.ts';
  const r = spawnSync(process.execPath, [...(entry.endsWith('.ts') ? ['--require=ts-node/register'] : []), '-e', `
    try { require(${JSON.stringify(entry)}); } catch (e) { console.error(e.code + ' ' + e.message); process.exit(3); }`], {
    cwd: root, env: { ...process.env, SEGVOL_ADDON: '/nonexistent/segvol.node' }, encoding: 'utf8',
  });
  t.is(r.status, 3, r.stderr);
  t.regex(r.stderr, /^ERR_NOT_BUILT segvol: the native addon is not built/m);
  t.regex(r.stderr, /npm skipped install scripts \(npm install --ignore-scripts/);
  const command = /build it now: node (\S+)/.exec(r.stderr);
  t.truthy(command, r.stderr);
  t.true(fs.existsSync(command![1]!), `the build script it names exists: ${command![1]}`);
  t.regex(r.stderr, /npm install-scripts approve segvol && npm rebuild segvol/);
});
