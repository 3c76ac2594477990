// The commands of segvol, one file each; main.ts registers them in this order.
import type { Command } from 'commander';
import { registerConvert } from './convert';
import { registerDemo } from './demo';
import { registerEvaluate } from './evaluate';
import { registerInfo } from './info';
import { registerInspect } from './inspect';
import { registerPlot } from './plot';
import { registerPredict } from './predict';
import { registerProfile } from './profile';
import { registerSegment } from './segment';
import { registerSplit } from './split';
import { registerSynth } from './synth';
import { registerTrain } from './train';
import { registerView } from './view';
import { registerWorker } from './worker';

export const commands: ReadonlyArray<(program: Command) => void> = [
  registerInfo, registerDemo, registerSynth, registerTrain, registerPredict, registerSegment, registerWorker, registerEvaluate, registerSplit, registerConvert, registerInspect,
  registerPlot, registerView, registerProfile,
];
