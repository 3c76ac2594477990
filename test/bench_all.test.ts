// The `npm run bench -- all` table's pieces that run without timing anything: the ratio
// chart (bars as long as the ratios, coloured by side of 1) and its argument checks.
import test from 'ava';
import { PNG } from 'pngjs';
import type { Rgb } from '../lib/io/canvas';
import { drawRatioChart, ratioColours } from '../benchmarks/ratio_chart';
import { all, allCaseIds } from '../benchmarks/suites/all';
import type { BenchArgs } from '../benchmarks/common';

/** The leftmost and rightmost column of `rgb` in the image, and how many rows hold it. */
function extentOf(png: PNG, rgb: Rgb): { x0: number; x1: number; rows: number } {
  let x0 = Infinity, x1 = -Infinity;
  const rows = new Set<number>();
  for (let y = 0; y < png.height; ++y) {
    for (let x = 0; x < png.width; ++x) {
      const i = (y * png.width + x) * 4;
      if (png.data[i] === rgb[0] && png.data[i + 1] === rgb[1] && png.data[i + 2] === rgb[2]) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        rows.add(y);
      }
    }
  }
  return { x0, x1, rows: rows.size };
}

test('ratio chart: a bar per ratio, as long as the ratio, blue at or above 1 and orange below; a row without a peer has no bar', (t) => {
  const png = PNG.sync.read(drawRatioChart([
    { label: 'twice as fast', ratio: 2 },
    { label: 'half as fast', ratio: 0.5 },
    { label: 'no peer', ratio: null, note: 'no PyTorch peer' },
  ], 'test chart'));
  const fast = extentOf(png, ratioColours.faster), slow = extentOf(png, ratioColours.slower);
  t.true(fast.rows > 10 && slow.rows > 10, 'both bars drawn');
  t.is(fast.x0, slow.x0, 'both bars start at 0');
  const fastLength = fast.x1 - fast.x0 + 1, slowLength = slow.x1 - slow.x0 + 1;
  t.true(Math.abs(fastLength / slowLength - 4) < 0.1, `bar lengths ${fastLength} and ${slowLength} should be in the ratio 2 : 0.5`);
  t.is(fast.rows, slow.rows, 'the row without a ratio adds no bar of either colour');
});

function argsOf(words: string[]): BenchArgs {
  return {
    repeats: 3,
    has: (flag) => words.includes(flag),
    value: (flag, offset = 1) => (words.includes(flag) ? words[words.indexOf(flag) + offset] : undefined),
  };
}

test('bench all refuses an unknown --only case, --from without --png and an unknown --peer-allocator, naming what it expected', async (t) => {
  const unknown = await t.throwsAsync(async () => all.run(argsOf(['all', '--only', 'pyramid-c5,lstmm'])));
  t.is((unknown as Error & { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(unknown!.message, /received lstmm/);
  t.true(allCaseIds.every((id) => unknown!.message.includes(id)), 'the message lists the case ids');
  const noPng = await t.throwsAsync(async () => all.run(argsOf(['all', '--from', 'results.json'])));
  t.is((noPng as Error & { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(noPng!.message, /needs --png/);
  const allocator = await t.throwsAsync(async () => all.run(argsOf(['all', '--peer-allocator', 'tcmalloc', '--only', 'lstm'])));
  t.is((allocator as Error & { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(allocator!.message, /expected one of glibc, caching; received 'tcmalloc'/);
});

test('bench all: the Markdown table gives GFLOP per run and both sides\' GFLOP/s, and dashes where a side is missing', async (t) => {
  const { markdownTable } = await import('../benchmarks/suites/all');
  const rows = [
    { id: 'a', label: 'A', case: 'case a', segvol_ms: 500, torch_ms: 1000, ratio: 2, segvol_peak_rss_mib: 100, torch_peak_rss_mib: 120, gflop: 50, segvol_gflops: 100, torch_gflops: 50 },
    { id: 'b', label: 'B', case: 'case b', segvol_ms: 10, torch_ms: null, ratio: null, segvol_peak_rss_mib: 90, torch_peak_rss_mib: null },
  ];
  const lines = markdownTable(rows).split('\n');
  t.regex(lines[0]!, /GFLOP per run \| GFLOP\/s \(segvol \/ torch\) \|$/);
  t.is(lines[2], '| case a | 500 | 1,000 | 2 | 100 / 120 | 50 | 100 / 50 |');
  t.is(lines[3], '| case b | 10 | - | - | 90 / - | - | - / - |');
});
