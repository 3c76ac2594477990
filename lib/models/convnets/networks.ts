// The 2D-3D ConvNets of Lee et al. (2015): N4, VD2D and VD2D3D, with the layers of
// ZNN's network files (docs/convnets.md has the tables), and two settings for their
// transfer functions and initial weights: 'modern' (plain tanh, He initialisation)
// and 'znn-v1' (ZNN's files for the paper's experiments). Every convolution is
// 'valid' and stride 1; each in-plane max-filter (a max-pooling window at stride 1)
// multiplies the dilation of every later filter by its window, so the net gives a
// dense output: at every voxel, what the max-pooling net gives on that voxel's
// window (its field of view).
import { describe, SegvolError } from '../../core/errors';
import { checkObject, oneOf, rejectUnknown } from '../../core/validate';
import { graph, type Graph, type GraphNode } from '../../nn/graph';
import type { Initializer } from '../../nn/init';
import type { LayerBuilder } from '../../nn/layer';
import { layers } from '../../nn/layers';

type Axis3 = [number, number, number];
export type ZnnPreset = 'n4' | 'vd2d' | 'vd2d3d';
type Activation = 'relu' | 'tanh';

/**
 * 'modern': tanh is plain tanh; every convolution starts He / MSRA normal (segvol's
 * choice before 'znn-v1', and the default, so model files saved without a setting
 * rebuild as they were trained).
 * 'znn-v1': ZNN's network files for the paper's experiments: tanh is LeCun's
 * 1.7159 tanh(0.6666 x), and each convolution starts as its file says (N4:
 * U(-0.05, 0.05); VD2D's tanh variant: U(-0.05, 0.05) before a ReLU or the output,
 * Xavier before a tanh; the ReLU variants and VD2D3D: MSRA normal).
 * Biases start at 0 in both.
 */
export type ZnnSettings = 'modern' | 'znn-v1';
const znnSettings: readonly ZnnSettings[] = ['modern', 'znn-v1'];

/** LeCun's scaled tanh as ZNN's files give it (function_args 1.7159,0.6666). */
const znnTanh = { amplitude: 1.7159, slope: 0.6666 } as const;

/** One stage of a ZNN network, in order. */
type Stage =
  | { conv: string; out: number; kernel: Axis3; activation: Activation | 'softmax' | 'none'; bias?: boolean }
  | { filter: string; window: Axis3; zMultiplier?: number }
  | { dropout: string; p: number };

export interface ZnnOptions {
  /** Output classes (default 2: boundary and not). */
  classes?: number;
  /** Fixes the initial weights. */
  seed?: number;
  /** The transfer functions and initial weights (default 'modern'; see ZnnSettings). */
  settings?: ZnnSettings;
  /** One initialiser for every convolution, instead of the setting's (biases stay 0). */
  init?: Initializer;
}

export interface Vd2dOptions extends ZnnOptions {
  /**
   * ZNN's two variants: all ReLU, or tanh after conv1c, conv2b, conv3b and conv4b (VD2D3D: the
   * first three). Default 'relu'. With settings 'znn-v1' the tanh is LeCun's scaled tanh.
   */
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

/** What a network's settings decide: each convolution's initialiser and the tanh layer. */
interface Resolved {
  initOf(conv: string): Initializer;
  tanh(): LayerBuilder;
}

/** The preset's settings, after refusing one it does not know. */
function settingsOf(options: ZnnOptions, preset: ZnnPreset): ZnnSettings {
  return oneOf(options.settings ?? 'modern', znnSettings, `${preset}: settings`);
}

const uniform005: Initializer = { kind: 'uniform', scale: 0.05 };
/** The convolutions a tanh follows in VD2D's tanh variant: its ZNN file starts them Xavier, the others U(-0.05, 0.05). */
const tanhEnds = ['conv1c', 'conv2b', 'conv3b', 'conv4b'];

/**
 * ZNN's initialiser of one convolution (seung-lab/znn-release): N4 from the v1 spec
 * networks/N4.spec; VD2D from networks/VD2D.znn and networks/VD2D_tanh.znn (the
 * latter as changed "to match v1 exps"); VD2D3D from networks/VD2D3D.znn and
 * networks/VD2D3D_tanh.znn, all MSRA. Its 'xavier' is U(+-sqrt(6 / (fanIn + fanOut)))
 * with segvol's (and PyTorch's) fans; 'uniform 0.05' is U(-0.05, 0.05).
 */
function znnInit(preset: ZnnPreset, activation: Activation, conv: string): Initializer {
  if (preset === 'n4') return uniform005;
  if (preset === 'vd2d' && activation === 'tanh') return tanhEnds.includes(conv) ? 'xavier' : uniform005;
  return 'msra';
}

function resolve(preset: ZnnPreset, options: ZnnOptions, activation: Activation): Resolved {
  const settings = settingsOf(options, preset);
  const given = options.init;
  if (settings === 'modern') return { initOf: () => given ?? 'msra', tanh: () => layers.tanh() };
  return { initOf: (conv) => given ?? znnInit(preset, activation, conv), tanh: () => layers.tanh({ ...znnTanh }) };
}

/** The graph of stages with dilations that keep the output dense. */
function build(name: ZnnPreset, stages: Stage[], options: ZnnOptions, resolved: Resolved, extra: { recursive?: boolean } = {}): Graph {
  const { inputs, nodes, output } = graphOf(stages, resolved, extra);
  // The setting is recorded even when it is the default, so a model file rebuilds the same functions whatever a later default.
  return graph({ inputs, nodes, output, seed: options.seed ?? 0 })
    .describedAs({ kind: 'preset', preset: name, options: { ...options, settings: settingsOf(options, name) } });
}

function graphOf(stages: Stage[], resolved: Resolved, extra: { recursive?: boolean }): { inputs: Record<string, number>; nodes: GraphNode[]; output: string } {
  const nodes: GraphNode[] = [];
  const dilation: Axis3 = [1, 1, 1];
  let last = 'image';
  const { initOf } = resolved;
  for (const stage of stages) {
    if ('conv' in stage) {
      const conv = layers.conv({ out: stage.out, kernel: stage.kernel, dilation: [...dilation], bias: stage.bias ?? true, init: initOf(stage.conv) });
      nodes.push({ name: stage.conv, layer: conv, input: last });
      last = stage.conv;
      if (stage.conv === 'conv1c' && extra.recursive) {
        // The recursive stream, summed into conv1c before its activation (conv1c's own bias stays the only one).
        nodes.push(
          { name: 'conv1a_r', layer: layers.conv({ out: 24, kernel: [1, 3, 3], init: initOf('conv1a_r') }), input: 'boundary' },
          { name: 'conv1a_r_relu', layer: layers.relu(), input: 'conv1a_r' },
          { name: 'conv1b_r', layer: layers.conv({ out: 24, kernel: [1, 3, 3], init: initOf('conv1b_r') }), input: 'conv1a_r_relu' },
          { name: 'conv1b_r_relu', layer: layers.relu(), input: 'conv1b_r' },
          { name: 'conv1c_r', layer: layers.conv({ out: 24, kernel: [1, 2, 2], bias: false, init: initOf('conv1c_r') }), input: 'conv1b_r_relu' },
          { name: 'conv1c_sum', join: 'sum', inputs: ['conv1c', 'conv1c_r'] },
        );
        last = 'conv1c_sum';
      }
      if (stage.activation !== 'none') {
        // Activation nodes hold no parameters: their names (and so the state dict) are the same in every setting.
        const act = `${stage.conv}_${stage.activation}`;
        const layer = stage.activation === 'tanh' ? resolved.tanh() : layers[stage.activation]();
        nodes.push({ name: act, layer, input: last });
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
  n4: ['classes', 'seed', 'init', 'settings'],
  vd2d: ['classes', 'seed', 'init', 'settings', 'activation'],
  vd2d3d: ['classes', 'seed', 'init', 'settings', 'activation', 'recursive'],
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
  return graphOf(stages, resolve(preset, options, end), { recursive: preset === 'vd2d3d' && (options.recursive ?? false) });
}

export const znnPresets = {
  /** N4, the IDSIA net (Ciresan et al.): 219,290 parameters, field of view 95x95x1, tanh (LeCun's scaled tanh with settings 'znn-v1'). */
  n4(options: ZnnOptions = {}): Graph {
    const classes = classesOf(options, 'n4');
    return build('n4', n4Stages(classes), options, resolve('n4', options, 'tanh'));
  },
  /** VD2D (Lee et al. 2015): 230,714 parameters, field of view 109x109x1. */
  vd2d(options: Vd2dOptions = {}): Graph {
    const classes = classesOf(options, 'vd2d'), end = activationOf(options, 'vd2d');
    return build('vd2d', vd2dStages(classes, end), options, resolve('vd2d', options, end));
  },
  /**
   * VD2D3D (Lee et al. 2015): VD2D's conv1a..conv3b, then a 2x2x2 max-filter and three
   * 2x3x3 convolutions: field of view 85x85x5; 296,486 parameters with the recursive
   * stream (288,734 without).
   */
  vd2d3d(options: Vd2d3dOptions = {}): Graph {
    const classes = classesOf(options, 'vd2d3d'), end = activationOf(options, 'vd2d3d');
    return build('vd2d3d', vd2d3dStages(classes, end), options, resolve('vd2d3d', options, end), { recursive: options.recursive ?? false });
  },
};
