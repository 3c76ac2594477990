// The README's code blocks, run as written. TypeScript blocks are type-checked
// and run in a fresh project that has segvol installed (node_modules/segvol links
// to this checkout, whose dist/ `npm test` has just built), as a user would. The
// command-line blocks run in order from the repository root, as the README says.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));

test('the README has TypeScript, shell and JSON blocks to check', (t) => {
  t.true(blocks.filter((b) => b.lang === 'ts').length >= 4);
  t.true(blocks.filter((b) => b.lang === 'sh').length >= 4);
});

function consumerProject(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-readme-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'segvol'), 'dir');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'readme-check', private: true }));
  // The tsconfig.json the README suggests, plus where this checkout keeps @types/node.
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'commonjs', target: 'ES2022', strict: true, types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')], noEmit: true },
    'ts-node': { swc: true },
  }));
  return dir;
}

const tsBlocks = blocks.filter((b) => b.lang === 'ts').map((b, k) => ({ name: `README TypeScript block ${k + 1}`, file: `example${k + 1}.ts`, code: b.code }));
// The TypeScript blocks of the docs pages that promise runnable examples run the same way.
const docBlocks = ['mri.md', 'consistent.md', 'metrics.md', 'affinity.md'].flatMap((page) => [...fs.readFileSync(path.join(root, 'docs', page), 'utf8').matchAll(/```(\w+)\n([\s\S]*?)```/g)]
  .filter((m) => m[1] === 'ts').map((m, k) => ({ name: `docs/${page} TypeScript block ${k + 1}`, file: `${page.replace('.md', '')}${k + 1}.ts`, code: m[2]! })));

for (const block of [...tsBlocks, ...docBlocks]) {
  test(`${block.name} type-checks and runs`, (t) => {
    const dir = consumerProject();
    const file = path.join(dir, block.file);
    fs.writeFileSync(file, block.code);
    const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    t.is(tsc.status, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
    const run = spawnSync(process.execPath, ['--require', path.join(root, 'node_modules', 'ts-node', 'register'), file],
      { cwd: dir, encoding: 'utf8', timeout: 300_000, env: { ...process.env, TS_NODE_PROJECT: path.join(dir, 'tsconfig.json') } });
    t.is(run.status, 0, `${run.stdout}\n${run.stderr}`);
    t.log(run.stdout.trim().split('\n').slice(-2).join(' | '));
  });
}

// The quick start's two commands are CI's own steps (.ci/run runs them on a fresh machine).
const isQuickStart = (code: string) => /apt-get|^npm test$/m.test(code);
const cliBlocks = blocks.filter((b) => b.lang === 'sh' && !isQuickStart(b.code));

test.serial('README command-line blocks run in order as written (synth, train, resume, predict, evaluate, plot, profile, convert, inspect)', (t) => {
  const out = path.join(root, 'segvol-data');
  if (fs.existsSync(out)) {
    t.log(`skipped: ${out} exists already (yours?); the README's commands would overwrite it`);
    t.pass();
    return;
  }
  try {
    let ran = 0;
    for (const block of cliBlocks) {
      for (const line of block.code.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean)) {
        const r = spawnSync('bash', ['-c', line], { cwd: root, encoding: 'utf8', timeout: 300_000 });
        t.is(r.status, 0, `${line}\n${r.stdout}\n${r.stderr}`);
        ran += 1;
      }
    }
    t.true(ran >= 10, `${ran} commands`);
    t.true(fs.existsSync(path.join(out, 'model.safetensors')) && fs.existsSync(path.join(out, 'curve.png')) && fs.existsSync(path.join(out, 'rand.png')) &&
      fs.existsSync(path.join(out, 'labels.tif')) && fs.existsSync(path.join(out, 'volume16.nii.gz')) &&
      fs.existsSync(path.join(out, 'labels.zarr', '.zarray')) && fs.existsSync(path.join(out, 'labels.zarr', '.segvol', 'done', '0')));
    t.true(fs.existsSync(path.join(out, 'labels.ome.zarr', '1', '.zarray')) && fs.existsSync(path.join(out, 'volume.ome.zarr', '0', '.zarray')),
      'the OME-Zarr prediction (two levels) and conversion');
    t.true(fs.existsSync(path.join(out, 'mri', 'pred.nii.gz')) && fs.existsSync(path.join(out, 'mri', 'model.safetensors')) &&
      fs.existsSync(path.join(out, 'mri-demo', 'slice.png')), 'the MRI commands wrote their model, prediction and demo panel');
    // The json block is what synth writes.
    const written = JSON.parse(fs.readFileSync(path.join(out, 'train.json'), 'utf8')) as unknown;
    t.deepEqual(written, JSON.parse(blocks.find((b) => b.lang === 'json')!.code));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
