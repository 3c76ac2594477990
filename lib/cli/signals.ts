// Stopping on SIGTERM and SIGINT, and the exit codes that go with it (docs/cluster.md):
// a command's handler sees each signal and how many have come; the process then ends
// with the command's code even if a library left a connection retrying behind it.
import * as os from 'node:os';

/** Redis (or another service) stayed unreachable: sysexits.h's EX_UNAVAILABLE. */
export const EXIT_UNAVAILABLE = 69;

/** 128 + the signal's number, as a shell reports a process the signal ended: 130 for SIGINT, 143 for SIGTERM. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 15);
}

/** Calls handler on every SIGTERM and SIGINT (count: 1 for the first); returns the function that removes it. */
export function onStopSignals(handler: (signal: NodeJS.Signals, count: number) => void): () => void {
  let count = 0;
  const on = (signal: NodeJS.Signals) => handler(signal, ++count);
  process.on('SIGTERM', on);
  process.on('SIGINT', on);
  return () => {
    process.off('SIGTERM', on);
    process.off('SIGINT', on);
  };
}

/**
 * Sets the exit code and makes sure the process ends: at once when nothing is left to run,
 * else after graceMs (a connection still retrying does not keep it alive).
 */
export function exitWith(code: number, graceMs = 500): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), graceMs).unref();
}
