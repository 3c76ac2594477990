// The layering docs/ARCHITECTURE.md describes, checked on the sources: lib/ has
// no import cycles, its folders depend one way, a network family imports only
// generic folders (never another family: only the registry sees them all), the
// CLI names no family, only lib/ops calls the addon's tensor computations and
// every op is defined with defineOp, one file loads the addon, and native/core
// depends on no backend.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const lib = path.join(root, 'lib');

function files(dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? files(full, ext) : ext.test(e.name) ? [full] : [];
  });
}

const sources = () => files(lib, /\.ts$/).filter((f) => !f.endsWith('.d.ts'));
const rel = (file: string) => path.relative(lib, file).split(path.sep).join('/');

/** A source without its comments (so prose may name what code must not). */
function code(file: string): string {
  return fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** lib/ file -> the lib/ files it imports; `types` adds type-only imports (they cannot form cycles at load, but they are dependencies). */
function libGraph(types = false): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources()) {
    const text = fs.readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)';/gms)) {
      if (m[1] && !types) continue;
      const target = path.resolve(path.dirname(file), m[2]!);
      const resolved = [`${target}.ts`, path.join(target, 'index.ts')].find((p) => fs.existsSync(p));
      if (resolved) deps.push(rel(resolved));
    }
    for (const m of text.matchAll(/^import\s+'(\.[^']+)';/gm)) {
      const target = path.resolve(path.dirname(file), m[1]!);
      const resolved = [`${target}.ts`, path.join(target, 'index.ts')].find((p) => fs.existsSync(p));
      if (resolved) deps.push(rel(resolved));
    }
    graph.set(rel(file), deps);
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

test('lib/ folders depend one way: core <- autograd <- ops <- nn <- training, inference <- models <- cluster, cli (type imports included)', (t) => {
  // A folder may import from the folders listed for it (and itself); index.ts and testing.ts see all.
  const allowed: Record<string, string[]> = {
    core: [],
    autograd: ['core'],
    ops: ['core', 'autograd'],
    io: ['core'],
    data: ['core', 'io'],
    evaluation: ['core'],
    nn: ['core', 'autograd', 'ops'],
    serialize: ['core', 'io', 'nn'],
    training: ['core', 'autograd', 'ops', 'nn', 'io', 'data', 'serialize'],
    inference: ['core', 'autograd', 'ops', 'nn', 'io', 'data', 'evaluation'],
    segmentation: ['core', 'io', 'evaluation', 'inference'],
    models: ['core', 'autograd', 'ops', 'nn', 'io', 'data', 'evaluation', 'training', 'inference', 'serialize'],
    cluster: ['core', 'io', 'nn', 'inference', 'serialize', 'models'],
    cli: ['core', 'autograd', 'ops', 'nn', 'data', 'io', 'evaluation', 'inference', 'segmentation', 'training', 'serialize', 'cluster', 'models'],
  };
  const wrong: string[] = [];
  const folders = new Set<string>();
  for (const [file, deps] of libGraph(true)) {
    const from = file.split('/')[0]!;
    if (!file.includes('/')) continue;
    folders.add(from);
    if (!(from in allowed)) {
      wrong.push(`${file}: the folder ${from} has no rule here`);
      continue;
    }
    for (const dep of deps) {
      const to = dep.split('/')[0]!;
      if (to !== from && !allowed[from]!.includes(to)) wrong.push(`${file} -> ${dep}`);
    }
  }
  t.true(folders.has('models') && folders.has('cli'));
  t.deepEqual(wrong, []);
});

test('a network family imports generic folders and itself only; only the registry (models/*.ts) sees every family', (t) => {
  const graph = libGraph(true);
  const familyOf = (file: string) => (/^models\/([^/]+)\//.exec(file) ?? [])[1];
  const families = new Set([...graph.keys()].map(familyOf).filter((f): f is string => f !== undefined));
  t.deepEqual([...families].sort(), ['affinity', 'consistent', 'convnets', 'mri', 'pyramid']);
  const wrong: string[] = [];
  for (const [file, deps] of graph) {
    const own = familyOf(file);
    for (const dep of deps) {
      const target = familyOf(dep);
      // A family may import its own files, the family interface, and generic folders.
      if (own !== undefined && dep.startsWith('models/') && target !== own && dep !== 'models/family.ts') wrong.push(`${file} -> ${dep}`);
      // Outside lib/models, a family's files are reached through the registry (index.ts and testing.ts see all).
      if (own === undefined && target !== undefined && file.includes('/') && !file.startsWith('models/')) wrong.push(`${file} -> ${dep}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('the CLI names no family: no family import, no instanceof on a model class, no family or preset name in its code', (t) => {
  const cli = sources().filter((f) => rel(f).startsWith('cli/'));
  t.true(cli.length >= 10, 'one file per command');
  const names = /\b(pyramid\w*|convnets?|znn\w*|n4|vd2d\w*|mri|brats?\w*|crossModality\w*|consistent\w*|resnet\w*|PyraMiD\w*|affinityUNet\w*|mala)\b/i;
  const wrong: string[] = [];
  for (const file of cli) {
    code(file).split('\n').forEach((line, i) => {
      const m = names.exec(line);
      if (m) wrong.push(`${rel(file)}:${i + 1}: names ${m[1]}`);
      if (/instanceof\s+\w*(Net|Model|Sequential|Graph|Encoder|Lstm\w*)\b/.test(line)) wrong.push(`${rel(file)}:${i + 1}: instanceof on a model class`);
    });
  }
  t.deepEqual(wrong, []);
});

test('only lib/ops calls the addon\'s tensor computations, and every op there is defined with defineOp', (t) => {
  const wrong: string[] = [];
  for (const file of sources()) {
    const r = rel(file);
    const text = code(file);
    // core: tensor memory and backends; evaluation: measures on label arrays (native/metrics); testing: cache counters.
    const mayCall = r.startsWith('ops/') || r.startsWith('core/') || r.startsWith('evaluation/') || r === 'testing.ts';
    if (!mayCall && /\bnative\.\w+\(/.test(text)) wrong.push(`${r}: calls the addon`);
    if (!mayCall && /\bhandleOf\b/.test(text)) wrong.push(`${r}: takes native handles`);
    if (r.startsWith('ops/') && /\b(recordOp|declareDifferentiable)\(/.test(text)) wrong.push(`${r}: records or declares an op without defineOp`);
  }
  t.deepEqual(wrong, []);
});

test('no hand-written file in lib/ is over 400 lines (the viewer page included); the training loop is under 300', (t) => {
  const page = files(path.join(lib, 'cli', 'viewer', 'assets'), /\.js$/);
  t.true(page.length > 0);
  const long = [...sources(), ...page].map((f) => [rel(f), fs.readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > 400);
  t.deepEqual(long, []);
  t.true(fs.readFileSync(path.join(lib, 'training', 'trainer.ts'), 'utf8').split('\n').length < 300);
});

test('only lib/cli/viewer serves HTTP; the page imports only its own modules and nothing from the network', (t) => {
  const servers = files(lib, /\.ts$/).filter((f) => /from 'node:https?'|require\('node:https?'\)/.test(fs.readFileSync(f, 'utf8')));
  t.true(servers.length > 0 && servers.every((f) => path.relative(lib, f).startsWith(path.join('cli', 'viewer'))), servers.map((f) => path.relative(root, f)).join(', '));
  for (const f of files(path.join(lib, 'cli', 'viewer', 'assets'), /\.(js|html)$/)) {
    const text = fs.readFileSync(f, 'utf8');
    const imports = [...text.matchAll(/(?:from\s+|import\s*\(\s*|src=)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    t.deepEqual(imports.filter((i) => !/^(\.\/|\/assets\/)[\w-]+\.js$/.test(i)), [], `${path.basename(f)} loads only the page's own scripts`);
  }
});

test('only lib/core/native.ts loads the addon; only native/binding includes napi.h; native/core knows no backend', (t) => {
  const loaders = files(lib, /\.ts$/).filter((f) => /require\([^)]*\.node|segvol\.node/.test(fs.readFileSync(f, 'utf8')));
  t.deepEqual(loaders.map((f) => path.relative(root, f)), ['lib/core/native.ts']);
  const nativeFiles = files(path.join(root, 'native'), /\.(cpp|h|cu|cuh|inc)$/);
  const napi = nativeFiles.filter((f) => /#include\s+<napi\.h>/.test(fs.readFileSync(f, 'utf8')));
  t.true(napi.length > 0 && napi.every((f) => path.relative(root, f).startsWith(path.join('native', 'binding'))), napi.join(', '));
  const core = nativeFiles.filter((f) => path.relative(root, f).startsWith(path.join('native', 'core')));
  const reaching = core.filter((f) => /#include\s+"\.\.\/(cpu|cuda|reference|registry|ops|binding)\//.test(fs.readFileSync(f, 'utf8')));
  t.deepEqual(reaching.map((f) => path.relative(root, f)), []);
});
