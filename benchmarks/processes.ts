// The other processes a suite runs: its Python peers (PyTorch, scikit-image, ...) and
// its own cases in a fresh process, where a case's peak memory must be its own (a
// process's peak RSS only grows).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../lib';
import { threads } from './common';

export const repoRoot = path.join(__dirname, '..');
const runScript = path.join(__dirname, 'run.ts');

function lastLines(stderr: string | null, count: number): string[] {
  return (stderr || '').trim().split('\n').slice(-count);
}

/** Runs benchmarks/<script> with python3 (or $PYTHON): its stdout, or the last line it said before failing. */
export function runPython(script: string, args: string[], input?: object): { stdout: string } | { error: string } {
  const r = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, script), ...args], {
    input: input === undefined ? undefined : JSON.stringify(input), encoding: 'utf8',
    env: { ...process.env, ...peerAllocatorEnv(), OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) return { error: lastLines(r.stderr || String(r.error), 1)[0] || 'peer failed' };
  return { stdout: r.stdout };
}

/**
 * The C allocator the PyTorch peer runs with (SEGVOL_BENCH_PEER_ALLOCATOR, set by `bench all
 * --peer-allocator`):
 * - 'glibc' (default): PyTorch as installed. glibc maps every block above 32 MiB fresh, so
 *   each training step faults its large activations in again, page by page.
 * - 'caching': jemalloc preloaded with purging off, so freed memory is reused as segvol's
 *   block cache reuses it. Where page faults are slow (virtual machines) this changes
 *   PyTorch's times most: its MRI step went from 6.4-7.8 s to 3.2-3.3 s here.
 */
export type PeerAllocator = 'glibc' | 'caching';
export const peerAllocators: readonly PeerAllocator[] = ['glibc', 'caching'];
const jemallocPaths = ['/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2',
  '/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'];

export function peerAllocator(): PeerAllocator {
  const value = process.env.SEGVOL_BENCH_PEER_ALLOCATOR ?? 'glibc';
  if (!(peerAllocators as readonly string[]).includes(value)) {
    throw new SegvolError('ERR_ARGUMENT', `the PyTorch peer's allocator: expected one of ${peerAllocators.join(', ')}; received '${value}'`);
  }
  return value as PeerAllocator;
}

/** The environment that gives the peer its allocator (nothing for glibc). */
function peerAllocatorEnv(): Record<string, string> {
  if (peerAllocator() === 'glibc') return {};
  const library = process.env.SEGVOL_BENCH_JEMALLOC ?? jemallocPaths.find((p) => fs.existsSync(p));
  if (library === undefined || !fs.existsSync(library)) {
    throw new SegvolError('ERR_ARGUMENT', `the 'caching' peer allocator preloads jemalloc, which was not found (looked for ${jemallocPaths.join(', ')}); ` +
      'install it (Debian/Ubuntu: apt-get install libjemalloc2) or give its path in SEGVOL_BENCH_JEMALLOC');
  }
  return { LD_PRELOAD: library, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' };
}

/** One case as benchmarks/peer_torch.py measured it. */
export interface PeerTiming {
  torch_ms: number;
  peak_rss_mib?: number;
}

/**
 * Runs a job on the PyTorch peer ({suite, repeats, cases, ...}; the thread count is added) and
 * looks its cases up by name. Without PyTorch every case is null and the reason is said once.
 */
export function runPeer(job: { suite: string; repeats: number; cases: readonly object[]; [key: string]: unknown }): (caseName: string) => PeerTiming | null {
  const r = runPython('peer_torch.py', [], { ...job, threads });
  if ('error' in r) {
    console.error(`torch peer unavailable (${r.error}); install it with: pip install torch`);
    return () => null;
  }
  const rows = new Map<string, PeerTiming>();
  for (const line of r.stdout.trim().split('\n').filter((l) => l !== '')) {
    const row = JSON.parse(line) as PeerTiming & { case: string };
    rows.set(row.case, row);
  }
  return (caseName) => rows.get(caseName) ?? null;
}

/**
 * Runs `run.ts <suite> --case <caseArgs>` in a fresh process and returns what it printed. On
 * failure prints the row {case: label, error} with the end of its stderr and returns null.
 */
export function runCaseInChild(label: string, suite: string, caseArgs: string[]): string | null {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register', runScript, suite, '--case', ...caseArgs],
    { cwd: repoRoot, encoding: 'utf8', env: process.env, maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.log(JSON.stringify({ case: label, error: lastLines(r.stderr, 3).join(' | ') }));
    return null;
  }
  return r.stdout;
}

/** The last JSON line a child or peer printed (its result; earlier lines are progress). */
export function lastJsonLine<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}
