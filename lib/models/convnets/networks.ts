// The 2D-3D ConvNets of Lee et al. (2015): N4, VD2D and VD2D3D, as ZNN's network
// files define them (docs/convnets.md has the tables). Every convolution is
// 'valid' and stride 1; each in-plane max-filter (a max-pooling window at stride 1)
// multiplies the dilation of every later filter by its window, so the net gives a
// dense output: at every voxel, what the max-pooling net gives on that voxel's
// window (its field of view).
import { describe, SegvolError } from '../../core/errors';
import { checkObject, rejectUnknown } from '../../core/validate';
import { graph, type Graph, type GraphNode } from '../../nn/graph';
import type { Initializer } from '../../nn/init';
import { layers } from '../../nn/layers';

type Axis3 = [number, number, number];
export type ZnnPreset = 'n4' | 'vd2d' | 'vd2d3d';
type Activation = 'relu' | 'tanh';

/** One stage of a ZNN network, in order. */
type Stage =
  | { conv: string; out: number; kernel: Axis3; activation: Activation | 'softmax' | 'none'; bias?: boolean }
  | { filter: string; window: Axis3; zMultiplier?: number }
  | { dropout: string; p: number };

export interface ZnnOptions {
  /** Output classes (default 2: boundary and not). */
  classes?: number;
  /** Fixes the initial weights (He / MSRA normal, as ZNN's configs; biases 0). */
  seed?: number;
  /** The convolutions' initialiser (default 'msra'). */
  init?: Initializer;
}

export interface Vd2dOptions extends ZnnOptions {
  /** ZNN's two variants: all ReLU, or tanh at the end of each stage (conv1c, 2b, 3b, 4b). Default 'relu'. */
  activation?: Activation;
}

export interface Vd2d3dOptions extends Vd2dOptions {
  /**
   * Recursive training's second input: a boundary map (a VD2D's output rescaled to
   * [-1, 1]) through conv1a-r, conv1b-r and conv1c-r, summed into conv1c before its bias
   * and activation. The model's inputs are then { image, boundary }. Default false.
   */
  recursive?: boolean;
}

/** The graph of stages with dilations that keep the output dense. */
function build(name: string, stages: Stage[], options: ZnnOptions, extra: { recursive?: boolean; activation?: Activation } = {},
  preset: object): Graph {
  const { inputs, nodes, output } = graphOf(stages, options, extra);
  return graph({ inputs, nodes, output, seed: options.seed ?? 0 }).describedAs({ kind: 'preset', preset: name, options: { ...preset } });
}

function graphOf(stages: Stage[], options: ZnnOptions, extra: { recursive?: boolean }): { inputs: Record<string, number>; nodes: GraphNode[]; output: string } {
  const nodes: GraphNode[] = [];
  const dilation: Axis3 = [1, 1, 1];
  let last = 'image';
  const init = options.init ?? 'msra';
  for (const stage of stages) {
    if ('conv' in stage) {
      const conv = layers.conv({ out: stage.out, kernel: stage.kernel, dilation: [...dilation], bias: stage.bias ?? true, init });
      nodes.push({ name: stage.conv, layer: conv, input: last });
      last = stage.conv;
      if (stage.conv === 'conv1c' && extra.recursive) {
        // The recursive stream, summed into conv1c before its activation (conv1c's own bias stays the only one).
        nodes.push(
          { name: 'conv1a_r', layer: layers.conv({ out: 24, kernel: [1, 3, 3], init }), input: 'boundary' },
          { name: 'conv1a_r_relu', layer: layers.relu(), input: 'conv1a_r' },
          { name: 'conv1b_r', layer: layers.conv({ out: 24, kernel: [1, 3, 3], init }), input: 'conv1a_r_relu' },
          { name: 'conv1b_r_relu', layer: layers.relu(), input: 'conv1b_r' },
          { name: 'conv1c_r', layer: layers.conv({ out: 24, kernel: [1, 2, 2], bias: false, init }), input: 'conv1b_r_relu' },
          { name: 'conv1c_sum', join: 'sum', inputs: ['conv1c', 'conv1c_r'] },
        );
        last = 'conv1c_sum';
      }
      if (stage.activation !== 'none') {
        const act = `${stage.conv}_${stage.activation}`;
        nodes.push({ name: act, layer: layers[stage.activation](), input: last });
        last = act;
      }
    } else if ('filter' in stage) {
      nodes.push({ name: stage.filter, layer: layers.maxFilter({ kernel: stage.window, dilation: [...dilation] }), input: last });
      last = stage.filter;
      dilation[0] *= stage.zMultiplier ?? stage.window[0];
      dilation[1] *= stage.window[1];
      dilation[2] *= stage.window[2];
    } else {
      nodes.push({ name: stage.dropout, layer: layers.dropout({ p: stage.p }), input: last });
      last = stage.dropout;
    }
  }
  const inputs: Record<string, number> = extra.recursive ? { image: 1, boundary: 1 } : { image: 1 };
  return { inputs, nodes, output: last };
}

const optionKeys: Record<ZnnPreset, readonly string[]> = {
  n4: ['classes', 'seed', 'init'],
  vd2d: ['classes', 'seed', 'init', 'activation'],
  vd2d3d: ['classes', 'seed', 'init', 'activation', 'recursive'],
};

/** The preset's classes, after refusing options it does not take (a misspelled key would pass silently in JavaScript). */
function classesOf(options: ZnnOptions, preset: ZnnPreset): number {
  checkObject(options, preset);
  rejectUnknown(options, optionKeys[preset], preset);
  const classes = options.classes ?? 2;
  if (!Number.isInteger(classes) || classes < 2) {
    throw new SegvolError('ERR_ARGUMENT', `${preset}: expected classes as an integer >= 2, received ${describe(options.classes)}`);
  }
  return classes;
}

function activationOf(options: Vd2dOptions, preset: string): Activation {
  const a = options.activation ?? 'relu';
  if (a !== 'relu' && a !== 'tanh') throw new SegvolError('ERR_ARGUMENT', `${preset}: expected activation 'relu' or 'tanh', received ${describe(a)}`);
  return a;
}

/** conv1a .. conv3b, shared by VD2D and VD2D3D (the layers recursive training transfers). */
function vd2dFront(end: Activation): Stage[] {
  return [
    { conv: 'conv1a', out: 24, kernel: [1, 3, 3], activation: 'relu' },
    { conv: 'conv1b', out: 24, kernel: [1, 3, 3], activation: 'relu' },
    { conv: 'conv1c', out: 24, kernel: [1, 2, 2], activation: end },
    { filter: 'pool1', window: [1, 2, 2] },
    { conv: 'conv2a', out: 36, kernel: [1, 3, 3], activation: 'relu' },
    { conv: 'conv2b', out: 36, kernel: [1, 3, 3], activation: end },
    { filter: 'pool2', window: [1, 2, 2] },
    { conv: 'conv3a', out: 48, kernel: [1, 3, 3], activation: 'relu' },
    { conv: 'conv3b', out: 48, kernel: [1, 3, 3], activation: end },
  ];
}

function n4Stages(classes: number): Stage[] {
  return [
    { conv: 'conv1', out: 48, kernel: [1, 4, 4], activation: 'tanh' },
    { filter: 'pool1', window: [1, 2, 2] },
    { conv: 'conv2', out: 48, kernel: [1, 5, 5], activation: 'tanh' },
    { filter: 'pool2', window: [1, 2, 2] },
    { conv: 'conv3', out: 48, kernel: [1, 4, 4], activation: 'tanh' },
    { filter: 'pool3', window: [1, 2, 2] },
    { conv: 'conv4', out: 48, kernel: [1, 4, 4], activation: 'tanh' },
    { filter: 'pool4', window: [1, 2, 2] },
    { conv: 'fc', out: 200, kernel: [1, 3, 3], activation: 'tanh' },
    { conv: 'output', out: classes, kernel: [1, 1, 1], activation: 'softmax' },
  ];
}

function vd2dStages(classes: number, end: Activation): Stage[] {
  return [
    ...vd2dFront(end),
    { filter: 'pool3', window: [1, 2, 2] },
    { conv: 'conv4a', out: 60, kernel: [1, 3, 3], activation: 'relu' },
    { conv: 'conv4b', out: 60, kernel: [1, 3, 3], activation: end },
    { filter: 'pool4', window: [1, 2, 2] },
    { conv: 'conv5', out: 200, kernel: [1, 3, 3], activation: 'relu' },
    { dropout: 'dropout', p: 0.5 },
    { conv: 'output', out: classes, kernel: [1, 1, 1], activation: 'softmax' },
  ];
}

function vd2d3dStages(classes: number, end: Activation): Stage[] {
  return [
    ...vd2dFront(end),
    // z is filtered but not subsampled by the equivalent pooling net: later z dilations stay 1.
    { filter: 'pool3', window: [2, 2, 2], zMultiplier: 1 },
    { conv: 'conv4a', out: 60, kernel: [2, 3, 3], activation: 'relu' },
    { conv: 'conv4b', out: 60, kernel: [2, 3, 3], activation: 'relu' },
    { conv: 'conv4c', out: 100, kernel: [2, 3, 3], activation: 'relu' },
    { dropout: 'dropout', p: 0.5 },
    { conv: 'output', out: classes, kernel: [1, 1, 1], activation: 'softmax' },
  ];
}

/** @internal The node list of a preset's graph (the convnet benchmark hands it to its PyTorch peer). */
export function znnGraph(preset: ZnnPreset, options: Vd2d3dOptions = {}): { inputs: Record<string, number>; nodes: GraphNode[]; output: string } {
  const classes = classesOf(options, preset);
  const end = activationOf(options, preset);
  const stages = preset === 'n4' ? n4Stages(classes) : preset === 'vd2d' ? vd2dStages(classes, end) : vd2d3dStages(classes, end);
  return graphOf(stages, options, { recursive: preset === 'vd2d3d' && (options.recursive ?? false) });
}

export const znnPresets = {
  /** N4, the IDSIA net (Ciresan et al.): 219,290 parameters, field of view 95x95x1, tanh. */
  n4(options: ZnnOptions = {}): Graph {
    return build('n4', n4Stages(classesOf(options, 'n4')), options, {}, options);
  },
  /** VD2D (Lee et al. 2015): 230,714 parameters, field of view 109x109x1. */
  vd2d(options: Vd2dOptions = {}): Graph {
    return build('vd2d', vd2dStages(classesOf(options, 'vd2d'), activationOf(options, 'vd2d')), options, {}, options);
  },
  /**
   * VD2D3D (Lee et al. 2015): VD2D's conv1a..conv3b, then a 2x2x2 max-filter and three
   * 2x3x3 convolutions: field of view 85x85x5; 296,486 parameters with the recursive
   * stream (288,734 without).
   */
  vd2d3d(options: Vd2d3dOptions = {}): Graph {
    return build('vd2d3d', vd2d3dStages(classesOf(options, 'vd2d3d'), activationOf(options, 'vd2d3d')), options,
      { recursive: options.recursive ?? false }, options);
  },
};
