// The layering docs/ARCHITECTURE.md describes, checked on the sources: lib/ has
// no import cycles, its folders depend one way, one file loads the addon, and
// native/core depends on no backend.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');

function files(dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? files(full, ext) : ext.test(e.name) ? [full] : [];
  });
}

/** lib/ file -> the lib/ files it imports at run time (type-only imports cannot form cycles at load). */
function libGraph(): Map<string, string[]> {
  const lib = path.join(root, 'lib');
  const graph = new Map<string, string[]>();
  for (const file of files(lib, /\.ts$/).filter((f) => !f.endsWith('.d.ts'))) {
    const text = fs.readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'(\.[^']+)';/gms)) {
      if (m[1]) continue;
      const target = path.resolve(path.dirname(file), m[2]!);
      const resolved = [`${target}.ts`, path.join(target, 'index.ts')].find((p) => fs.existsSync(p));
      if (resolved) deps.push(path.relative(lib, resolved));
    }
    graph.set(path.relative(lib, file), deps);
  }
  return graph;
}

test('lib/ has no import cycles', (t) => {
  const graph = libGraph();
  t.true(graph.size > 30);
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (node: string, trail: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(node)), node].join(' -> '));
      return;
    }
    state.set(node, 'open');
    for (const dep of graph.get(node) ?? []) visit(dep, [...trail, node]);
    state.set(node, 'done');
  };
  for (const node of graph.keys()) visit(node, []);
  t.deepEqual(cycles, []);
});

test('lib/ folders depend one way: core <- autograd <- ops <- nn <- presets, training, inference, cli', (t) => {
  // A folder may import from the folders listed for it (and itself); index.ts and testing.ts see all.
  const allowed: Record<string, string[]> = {
    core: [],
    autograd: ['core'],
    ops: ['core', 'autograd'],
    io: ['core'],
    nn: ['core', 'autograd', 'ops', 'io', 'data'],
    presets: ['core', 'ops', 'nn', 'io'],  // models written as forward functions call ops
    data: ['core', 'io'],
    training: ['core', 'autograd', 'ops', 'nn', 'io', 'data', 'inference'],  // recursive training runs stitched inference
    evaluation: ['core'],
    inference: ['core', 'autograd', 'nn', 'io', 'data', 'evaluation'],
    serialize: ['core', 'io', 'nn', 'presets'],
    cluster: ['core', 'io', 'nn', 'inference', 'serialize'],
    cli: ['core', 'autograd', 'ops', 'nn', 'presets', 'training', 'data', 'io', 'evaluation', 'inference', 'serialize', 'cluster'],
  };
  const wrong: string[] = [];
  for (const [file, deps] of libGraph()) {
    const from = file.split(path.sep)[0]!;
    if (!(from in allowed)) continue;
    for (const dep of deps) {
      const to = dep.split(path.sep)[0]!;
      if (to !== from && !allowed[from]!.includes(to)) wrong.push(`${file} -> ${dep}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('only lib/core/native.ts loads the addon; only native/binding includes napi.h; native/core knows no backend', (t) => {
  const loaders = files(path.join(root, 'lib'), /\.ts$/).filter((f) => /require\([^)]*\.node|segvol\.node/.test(fs.readFileSync(f, 'utf8')));
  t.deepEqual(loaders.map((f) => path.relative(root, f)), ['lib/core/native.ts']);
  const nativeFiles = files(path.join(root, 'native'), /\.(cpp|h|cu|cuh|inc)$/);
  const napi = nativeFiles.filter((f) => /#include\s+<napi\.h>/.test(fs.readFileSync(f, 'utf8')));
  t.true(napi.length > 0 && napi.every((f) => path.relative(root, f).startsWith(path.join('native', 'binding'))), napi.join(', '));
  const core = nativeFiles.filter((f) => path.relative(root, f).startsWith(path.join('native', 'core')));
  const reaching = core.filter((f) => /#include\s+"\.\.\/(cpu|cuda|reference|registry|ops|binding)\//.test(fs.readFileSync(f, 'utf8')));
  t.deepEqual(reaching.map((f) => path.relative(root, f)), []);
});
