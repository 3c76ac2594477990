// Convolutions, transposed convolutions and the pixel-wise fully connected layer,
// each with its gradient registered beside it.
import { defineOp } from '../autograd/tape';
import { native, type ImplementationName, type NativeConvGrads } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import { convGeometry, perAxis, type ConvOptions, type ConvTransposeOptions } from './geometry';

/** Which gradients to compute; all by default. */
export interface GradientRequest {
  input?: boolean;
  weight?: boolean;
  bias?: boolean;
}

export interface ConvGradients {
  /** Gradient of the input. */
  dx?: Tensor;
  /** Gradient of the weight. */
  dw?: Tensor;
  /** Gradient of the bias. */
  db?: Tensor;
}

function needs(request: GradientRequest | undefined): [boolean, boolean, boolean] {
  return [request?.input ?? true, request?.weight ?? true, request?.bias ?? true];
}

function wrapGrads(g: NativeConvGrads): ConvGradients {
  const out: ConvGradients = {};
  if (g.dx) out.dx = Tensor.fromHandle(g.dx);
  if (g.dw) out.dw = Tensor.fromHandle(g.dw);
  if (g.db) out.db = Tensor.fromHandle(g.db);
  return out;
}

function optionalHandle(v: Tensor | null | undefined, op: string, name: string) {
  return v === null || v === undefined ? null : handleOf(v, op, name);
}

const asRequest = (n: readonly boolean[]): GradientRequest => ({ input: n[0]!, weight: n[1]!, bias: n[2]! });

export function convolutionOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;

  function convBackward(x: Tensor, w: Tensor, dy: Tensor, options: ConvOptions = {}, request?: GradientRequest): ConvGradients {
    const g = convGeometry(x, w, options, 'convBackward');
    const [needInput, needWeight, needBias] = needs(request);
    return wrapGrads(native.convBackward(impl, h(x, 'convBackward', 'input'), h(w, 'convBackward', 'weight'),
      h(dy, 'convBackward', 'output gradient'), g, needInput, needWeight, needBias));
  }

  async function convBackwardAsync(x: Tensor, w: Tensor, dy: Tensor, options: ConvOptions = {}, request?: GradientRequest): Promise<ConvGradients> {
    const g = convGeometry(x, w, options, 'convBackward');
    const [needInput, needWeight, needBias] = needs(request);
    return wrapGrads(await native.convBackwardAsync(impl, h(x, 'convBackward', 'input'), h(w, 'convBackward', 'weight'),
      h(dy, 'convBackward', 'output gradient'), g, needInput, needWeight, needBias));
  }

  function convTransposeBackward(x: Tensor, w: Tensor, dy: Tensor, options: ConvTransposeOptions = {},
    request?: GradientRequest): ConvGradients {
    const op = 'convTransposeBackward';
    const g = convGeometry(x, w, options, op);
    const outputPadding = perAxis(options.outputPadding, g.stride.length, 0, op, 'outputPadding', 0);
    const [needInput, needWeight, needBias] = needs(request);
    return wrapGrads(native.convTransposeBackward(impl, h(x, op, 'input'), h(w, op, 'weight'),
      h(dy, op, 'output gradient'), g, outputPadding, needInput, needWeight, needBias));
  }

  function pixelwiseBackward(x: Tensor, w: Tensor, dy: Tensor, request?: GradientRequest): ConvGradients {
    const op = 'pixelwiseBackward';
    const [needInput, needWeight, needBias] = needs(request);
    return wrapGrads(native.pixelwiseBackward(impl, h(x, op, 'input'), h(w, op, 'weight'),
      h(dy, op, 'output gradient'), needInput, needWeight, needBias));
  }

  const gradientOf = (r: ConvGradients) => [r.dx, r.dw, r.db];

  const conv = defineOp('conv', (op, x: Tensor, w: Tensor, options: ConvOptions = {}): Tensor => {
    const g = convGeometry(x, w, options, 'conv');
    const y = t(native.conv(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'), optionalHandle(options.bias, 'conv', 'bias'), g));
    op.record({
      inputs: [x, w, options.bias], outputs: [y], save: [x, w],
      backward: ([dy], [xs, ws], n) => gradientOf(convBackward(xs!, ws!, dy!, options, asRequest(n))),
    });
    return y;
  });
  const convAsync = defineOp('conv', async (op, x: Tensor, w: Tensor, options: ConvOptions = {}): Promise<Tensor> => {
    const g = convGeometry(x, w, options, 'conv');
    const y = t(await native.convAsync(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'), optionalHandle(options.bias, 'conv', 'bias'), g));
    op.record({
      inputs: [x, w, options.bias], outputs: [y], save: [x, w],
      backward: async ([dy], [xs, ws], n) => gradientOf(await convBackwardAsync(xs!, ws!, dy!, options, asRequest(n))),
    });
    return y;
  });
  const convTranspose = defineOp('convTranspose', (op, x: Tensor, w: Tensor, options: ConvTransposeOptions = {}): Tensor => {
    const g = convGeometry(x, w, options, op.name);
    const outputPadding = perAxis(options.outputPadding, g.stride.length, 0, op.name, 'outputPadding', 0);
    const y = t(native.convTranspose(impl, h(x, op.name, 'input'), h(w, op.name, 'weight'), optionalHandle(options.bias, op.name, 'bias'),
      g, outputPadding));
    op.record({
      inputs: [x, w, options.bias], outputs: [y], save: [x, w],
      backward: ([dy], [xs, ws], n) => gradientOf(convTransposeBackward(xs!, ws!, dy!, options, asRequest(n))),
    });
    return y;
  });
  const pixelwise = defineOp('pixelwise', (op, x: Tensor, w: Tensor, bias?: Tensor | null): Tensor => {
    const y = t(native.pixelwise(impl, h(x, 'pixelwise', 'input'), h(w, 'pixelwise', 'weight'), optionalHandle(bias, 'pixelwise', 'bias')));
    op.record({
      inputs: [x, w, bias], outputs: [y], save: [x, w],
      backward: ([dy], [xs, ws], n) => gradientOf(pixelwiseBackward(xs!, ws!, dy!, asRequest(n))),
    });
    return y;
  });

  return {
    ops: {
      /** Convolution (cross-correlation) of x: (N, C, [D,] H, W) with w: (O, C/groups, [kD,] kH, kW). */
      conv,
      /** conv on the compute thread: the event loop stays free (its gradient runs there too). */
      convAsync,
      /** Transposed convolution; w: (C, O/groups, [kD,] kH, kW), as PyTorch's conv_transpose. */
      convTranspose,
      /** Pixel-wise fully connected layer: w: (F, C), bias: (F); the same matrix at every voxel. */
      pixelwise,
    },
    backward: {
      /** Gradients of conv given dy, the gradient of its output. Pass the same options as to conv. */
      convBackward,
      /** convBackward on the compute thread. */
      convBackwardAsync,
      convTransposeBackward,
      pixelwiseBackward,
    },
  };
}
