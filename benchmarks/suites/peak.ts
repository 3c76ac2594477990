// npm run bench -- peak: the machine's float32 peak on the benchmark thread count, so that the
// table's GFLOP/s columns (npm run bench -- all) can be read against it: an FMA-only kernel
// (the ceiling) and oneDNN's sgemm on 2048^3 (what a large product reaches). Compiles
// benchmarks/native/machine_peak.cpp with the same compiler and oneDNN the addon uses.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SegvolError } from '../../lib';
import { threads, type Suite } from '../common';
import { repoRoot } from '../processes';

export const peak: Suite = {
  name: 'peak',
  measures: 'best of 5 FMA runs and of 5 sgemm runs (--repeats is not used)',
  run() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-peak-'));
    const binary = path.join(dir, 'machine_peak');
    const dnnlRoot = process.env.DNNL_ROOT;
    const dnnl = dnnlRoot ? [`-I${dnnlRoot}/include`, `-L${dnnlRoot}/lib`, `-Wl,-rpath,${dnnlRoot}/lib`] : [];
    const compiler = process.env.CXX ?? 'g++';
    const source = path.join(repoRoot, 'benchmarks', 'native', 'machine_peak.cpp');
    const built = spawnSync(compiler, ['-O3', `-march=${process.env.SEGVOL_MARCH ?? 'native'}`, '-fopenmp', ...dnnl, source, '-ldnnl', '-o', binary], { encoding: 'utf8' });
    if (built.status !== 0) {
      throw new SegvolError('ERR_NATIVE', `bench peak: compiling ${source} with ${compiler} failed (it needs the oneDNN headers the addon builds with; set DNNL_ROOT if they are not system-wide):\n${built.stderr}`);
    }
    const ran = spawnSync(binary, [], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    fs.rmSync(dir, { recursive: true, force: true });
    if (ran.status !== 0) throw new SegvolError('ERR_NATIVE', `bench peak: the peak program failed: ${ran.stderr}`);
    process.stdout.write(ran.stdout);
  },
};
