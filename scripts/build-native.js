#!/usr/bin/env node
// Builds the native addon with cmake-js, offline: binary.napi_versions in
// package.json makes cmake-js take Node's headers from the node-api-headers
// package instead of downloading them. Checks the toolchain first, so a missing
// piece fails with one message that names it and the command that installs it.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function has(command, args = ['--version']) {
  const r = spawnSync(command, args, { stdio: 'ignore' });
  return r.status === 0;
}

function failWith(what, solutions) {
  console.error(`\nsegvol: cannot build the native addon: ${what}`);
  console.error('Possible solutions:');
  for (const s of solutions) console.error(`  - ${s}`);
  console.error('');
  process.exit(1);
}

if (process.env.DNNL_ROOT && !fs.existsSync(path.join(process.env.DNNL_ROOT, 'include', 'dnnl.hpp'))) {
  failWith(`DNNL_ROOT is set to '${process.env.DNNL_ROOT}', which holds no oneDNN (no include/dnnl.hpp there)`, [
    'point DNNL_ROOT at a oneDNN 2.x install prefix (with include/dnnl.hpp and lib/libdnnl.so)',
    "or unset DNNL_ROOT to use the system's oneDNN (Debian/Ubuntu: sudo apt-get install -y libdnnl-dev)",
  ]);
}

const missing = [];
if (!has('cmake')) missing.push('cmake');
if (!has(process.env.CXX || 'c++')) missing.push('a C++17 compiler (g++)');
const dnnlHeader = ['/usr/include/dnnl.hpp', '/usr/local/include/dnnl.hpp',
  process.env.DNNL_ROOT && path.join(process.env.DNNL_ROOT, 'include', 'dnnl.hpp')].filter(Boolean);
if (!dnnlHeader.some((p) => fs.existsSync(p))) missing.push('oneDNN (libdnnl-dev)');
if (missing.length) {
  failWith(`missing ${missing.join(', ')}`, [
    'Debian/Ubuntu: sudo apt-get install -y cmake g++ libdnnl-dev',
    'or set DNNL_ROOT to a oneDNN 2.x prefix and CXX to your compiler',
    'then run npm install (or npm run build:native) again',
  ]);
}

const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
// --emulated: the test build with the CUDA backend emulated on the CPU
// (SEGVOL_CUDA=EMULATED) in build-emulated/, beside the real build.
const emulated = process.argv.includes('--emulated');
const args = [cmakeJs, 'compile', '--directory', root, '--out', path.join(root, emulated ? 'build-emulated' : 'build')];
if (emulated) args.push('--CDSEGVOL_CUDA=EMULATED');
if (process.argv.includes('--debug')) args.push('--debug');
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
if (r.status !== 0) {
  failWith('the CMake build failed (see the messages above)', [
    'install the build tools: sudo apt-get install -y cmake g++ libdnnl-dev',
    'remove the build/ folder and run npm run build:native again',
  ]);
}
