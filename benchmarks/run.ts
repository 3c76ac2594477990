// npm run bench -- <suite> [--repeats N] [flags]: one suite of benchmarks/suites/.
// npm run bench -- pyramid --gpu [--tf32] [--smoke]: the GPU cases (segvol on cuda
// vs PyTorch eager with cuDNN, same convolution math); --smoke runs the same code
// on tiny shapes without the peer (checks the suite on the emulated build).
// Runs segvol and its PyTorch peer (benchmarks/peer_torch.py) in the same run,
// same shapes, same thread count, and prints one JSON line per case:
//   {"case", "segvol_ms", "torch_ms", "ratio", "gflops"}   ratio = torch_ms / segvol_ms
// Timings are medians after two warm-up runs. Without PyTorch, torch_ms and ratio
// are null and the reason is printed once.
// Suites that measure a process's peak memory re-enter this file in a child process
// with `<suite> --case ...` (benchmarks/processes.ts).
import { setConvMath } from '../lib';
import { threads, type BenchArgs } from './common';
import { suites } from './suites';

function parseArgs(words: string[]): { suiteName: string; args: BenchArgs } {
  const repeatsAt = words.indexOf('--repeats');
  const suiteName = words.find((w) => !w.startsWith('--')) ?? 'conv';
  return {
    suiteName,
    args: {
      repeats: repeatsAt >= 0 ? Number(words[repeatsAt + 1]) : suites.find((s) => s.name === suiteName)?.defaultRepeats ?? 10,
      has: (flag) => words.includes(flag),
      value: (flag, offset = 1) => {
        const at = words.indexOf(flag);
        return at >= 0 ? words[at + offset] : undefined;
      },
    },
  };
}

async function main(): Promise<void> {
  const { suiteName, args } = parseArgs(process.argv.slice(2));
  const suite = suites.find((s) => s.name === suiteName);
  if (!suite) {
    console.error(`unknown benchmark suite '${suiteName}'; available: ${suites.map((s) => s.name).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  // bench all --precision bf16 sets this for its child processes and its PyTorch peer (autocast).
  const precision = process.env.SEGVOL_BENCH_PRECISION;
  if (precision === 'bf16') setConvMath('bf16');
  console.error(`segvol bench ${suiteName}: ${threads} threads, ${suite.measures ?? `${args.repeats} timed runs per case (median)`}${precision === 'bf16' ? ', bf16 convolutions' : ''}`);
  await suite.run(args);
}

void main();
