// Convolutions, transposed convolutions and the pixel-wise fully connected layer,
// each with its gradient registered beside it.
import { declareDifferentiable, recordOp } from '../autograd/tape';
import { native, type ImplementationName, type NativeConvGrads } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import { convGeometry, perAxis, type ConvOptions, type ConvTransposeOptions } from './geometry';

declareDifferentiable('conv', 'convTranspose', 'pixelwise');

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

  return {
    /** Convolution (cross-correlation) of x: (N, C, [D,] H, W) with w: (O, C/groups, [kD,] kH, kW). */
    conv(x: Tensor, w: Tensor, options: ConvOptions = {}): Tensor {
      const g = convGeometry(x, w, options, 'conv');
      const y = t(native.conv(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'), optionalHandle(options.bias, 'conv', 'bias'), g));
      recordOp({
        op: 'conv', inputs: [x, w, options.bias], outputs: [y], save: [x, w],
        backward: ([dy], [xs, ws], n) => {
          const r = convBackward(xs!, ws!, dy!, options, asRequest(n));
          return [r.dx, r.dw, r.db];
        },
      });
      return y;
    },
    /** Gradients of conv given dy, the gradient of its output. Pass the same options as to conv. */
    convBackward,
    /** conv on the compute thread: the event loop stays free (its gradient runs there too). */
    async convAsync(x: Tensor, w: Tensor, options: ConvOptions = {}): Promise<Tensor> {
      const g = convGeometry(x, w, options, 'conv');
      const y = t(await native.convAsync(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'),
        optionalHandle(options.bias, 'conv', 'bias'), g));
      recordOp({
        op: 'conv', inputs: [x, w, options.bias], outputs: [y], save: [x, w],
        backward: async ([dy], [xs, ws], n) => {
          const r = await convBackwardAsync(xs!, ws!, dy!, options, asRequest(n));
          return [r.dx, r.dw, r.db];
        },
      });
      return y;
    },
    /** convBackward on the compute thread. */
    convBackwardAsync,
    /** Transposed convolution; w: (C, O/groups, [kD,] kH, kW), as PyTorch's conv_transpose. */
    convTranspose(x: Tensor, w: Tensor, options: ConvTransposeOptions = {}): Tensor {
      const op = 'convTranspose';
      const g = convGeometry(x, w, options, op);
      const outputPadding = perAxis(options.outputPadding, g.stride.length, 0, op, 'outputPadding', 0);
      const y = t(native.convTranspose(impl, h(x, op, 'input'), h(w, op, 'weight'), optionalHandle(options.bias, op, 'bias'),
        g, outputPadding));
      recordOp({
        op, inputs: [x, w, options.bias], outputs: [y], save: [x, w],
        backward: ([dy], [xs, ws], n) => {
          const r = convTransposeBackward(xs!, ws!, dy!, options, asRequest(n));
          return [r.dx, r.dw, r.db];
        },
      });
      return y;
    },
    convTransposeBackward,
    /** Pixel-wise fully connected layer: w: (F, C), bias: (F); the same matrix at every voxel. */
    pixelwise(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
      const y = t(native.pixelwise(impl, h(x, 'pixelwise', 'input'), h(w, 'pixelwise', 'weight'),
        optionalHandle(bias, 'pixelwise', 'bias')));
      recordOp({
        op: 'pixelwise', inputs: [x, w, bias], outputs: [y], save: [x, w],
        backward: ([dy], [xs, ws], n) => {
          const r = pixelwiseBackward(xs!, ws!, dy!, asRequest(n));
          return [r.dx, r.dw, r.db];
        },
      });
      return y;
    },
    pixelwiseBackward,
  };
}
