// npm run bench -- tf32: what TF32 convolutions cost in accuracy on the PyraMiD-LSTM goldens.
import * as path from 'node:path';
import { ops, readSafetensors, setConvMath, Tensor } from '../../lib';
import { optimized } from '../../lib/testing';
import { requireCuda, type Suite } from '../common';
import { repoRoot } from '../processes';

/** The largest difference of `a` from the reference `b`, relative to b's largest magnitude. */
function worstRelativeError(a: Float32Array, b: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; ++i) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

/**
 * The largest error against PyTorch's float64 result (y, dx and every weight gradient),
 * relative to the largest reference value, in FP32 and in TF32. On the emulated build the
 * TF32 rounding is emulated (operands rounded to TF32, float32 sums).
 */
async function tf32Accuracy(): Promise<void> {
  const cuda = requireCuda('the tf32 suite needs the cuda backend (real or emulated: npm run build:native -- --emulated, SEGVOL_ADDON=...)');
  if (!cuda) return;
  const dir = path.join(repoRoot, 'test', 'fixtures', 'pyramid');
  for (const name of ['layer_k3_N2', 'layer_k5']) {
    const f = readSafetensors(path.join(dir, `${name}.safetensors`));
    const get = (key: string) => { const a = f.tensors.get(key)!; return Tensor.fromArray(a.data, a.shape, { device: 'cuda' }); };
    const ref = (key: string) => f.tensors.get(key)!.data;
    const result: Record<string, unknown> = { case: `tf32 vs fp32 on the ${name} golden`, device: cuda.detail };
    for (const mode of ['fp32', 'tf32'] as const) {
      setConvMath(mode);
      try {
        const weights = [0, 1, 2, 3, 4, 5].map((d) => ({ wx: get(`dir${d}.wx`), bx: get(`dir${d}.bx`), wh: get(`dir${d}.wh`), bh: get(`dir${d}.bh`) }));
        const r = ops.pyramidLstm(get('x'), weights);
        const g = optimized.pyramidLstmBackward(r.saved, get('dy'));
        let grads = 0;
        for (let d = 0; d < 6; ++d) {
          for (const k of ['wx', 'bx', 'wh', 'bh'] as const) grads = Math.max(grads, worstRelativeError(g.grads[d]![`d${k}`].toArray(), ref(`dir${d}.d${k}`)));
        }
        result[`${mode}_y`] = Number(worstRelativeError(r.y.toArray(), ref('y')).toExponential(2));
        result[`${mode}_dx`] = Number(worstRelativeError(g.dx.toArray(), ref('dx')).toExponential(2));
        result[`${mode}_grads`] = Number(grads.toExponential(2));
      } finally {
        setConvMath('fp32');
      }
    }
    console.log(JSON.stringify(result));
  }
}

export const tf32: Suite = {
  name: 'tf32',
  run: () => tf32Accuracy(),
};
