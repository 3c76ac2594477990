// Progress for long commands: a bar redrawn in place on a terminal, and plain
// lines every few seconds otherwise (logs, nohup, CI), so a run never goes silent.

export interface ProgressReporter {
  /** fraction in [0, 1], text: what to show after the bar. */
  update(fraction: number, text: string): void;
  /** Ends the bar's line on a terminal; prints the last state elsewhere. */
  done(): void;
}

/**
 * Seconds between plain lines when stderr is not a terminal: SEGVOL_PROGRESS_SECONDS,
 * else 10.
 */
function interval(): number {
  const v = Number(process.env.SEGVOL_PROGRESS_SECONDS);
  return Number.isFinite(v) && v >= 0 ? v : 10;
}

export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const tty = stream.isTTY === true;
  const every = interval() * 1000;
  let lastDraw = 0;
  let lastLine = -Infinity;
  let last: { fraction: number; text: string } | undefined;
  let lastShown = false;
  const line = (fraction: number, text: string) => stream.write(`${label} ${(fraction * 100).toFixed(0).padStart(3)}%  ${text}\n`);
  return {
    update(fraction, text) {
      const f = Math.max(0, Math.min(1, fraction));
      last = { fraction: f, text };
      const now = Date.now();
      if (tty) {
        if (now - lastDraw < 100 && f < 1) return;
        lastDraw = now;
        const width = 24;
        const bar = '#'.repeat(Math.round(f * width)).padEnd(width, '-');
        stream.write(`\r${label} [${bar}] ${text}   `);
      } else {
        lastShown = now - lastLine >= every;
        if (lastShown) {
          lastLine = now;
          line(f, text);
        }
      }
    },
    done() {
      if (tty) {
        if (last) stream.write('\n');
      } else if (last && !lastShown) {
        line(last.fraction, last.text);
      }
    },
  };
}

/** Seconds as 1h02m, 3m05s or 42s. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}
