// Every suite npm run bench knows, in the order an unknown name lists them.
import type { Suite } from '../common';
import { all } from './all';
import { asyncOps } from './async';
import { blocks } from './blocks';
import { brats } from './brats';
import { consistent } from './consistent';
import { conv } from './conv';
import { convnet } from './convnet';
import { data } from './data';
import { distributed } from './distributed';
import { eventloop } from './eventloop';
import { memory } from './memory';
import { metrics } from './metrics';
import { peak } from './peak';
import { pipeline } from './pipeline';
import { precision } from './precision';
import { pyramid } from './pyramid';
import { rnn } from './rnn';
import { shapes } from './shapes';
import { step } from './step';
import { tf32 } from './tf32';

export const suites: readonly Suite[] = [all, asyncOps, brats, blocks, consistent, convnet, memory, rnn, pipeline, tf32, step, eventloop, data, metrics, precision, pyramid, conv, shapes, distributed, peak];
