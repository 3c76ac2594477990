// Golden values from PyTorch (test/fixtures/make_fixtures.py, committed as
// safetensors): forward outputs and all gradients, for both implementations.
// Tolerance: the fixtures are float64 results rounded to float32, segvol computes
// in float32 from the rounded inputs; 1e-4 absolute + 1e-4 relative covers sums
// of a few hundred products.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, Tensor } from '../lib';
import { optimized, reference, type OpsWithBackward as Ops } from '../lib/testing';
import { assertClose } from './helpers';

const tolerance = { abs: 1e-4, rel: 1e-4 };
const dir = path.join(__dirname, 'fixtures', 'ops');

interface GoldenCase {
  op: string;
  [key: string]: unknown;
}

function run(o: Ops, c: GoldenCase, v: Record<string, Tensor>): { y: Tensor; grads: Record<string, Tensor> } {
  const dy = v.dy!;
  switch (c.op) {
    case 'conv': {
      const options = { stride: c.stride as number[], padding: c.padding as number[], dilation: c.dilation as number[],
        groups: c.groups as number, bias: v.b! };
      const g = o.convBackward(v.x!, v.w!, dy, options);
      return { y: o.conv(v.x!, v.w!, options), grads: { dx: g.dx!, dw: g.dw!, db: g.db! } };
    }
    case 'convTranspose': {
      const options = { stride: c.stride as number[], padding: c.padding as number[], dilation: c.dilation as number[],
        groups: c.groups as number, outputPadding: c.outputPadding as number[], bias: v.b! };
      const g = o.convTransposeBackward(v.x!, v.w!, dy, options);
      return { y: o.convTranspose(v.x!, v.w!, options), grads: { dx: g.dx!, dw: g.dw!, db: g.db! } };
    }
    case 'maxPool': {
      const options = { kernel: c.kernel as number[], stride: c.stride as number[], padding: c.padding as number[],
        dilation: c.dilation as number[] };
      return { y: o.maxPool(v.x!, options), grads: { dx: o.maxPoolBackward(v.x!, dy, options) } };
    }
    case 'avgPool': {
      const options = { kernel: c.kernel as number[], stride: c.stride as number[], padding: c.padding as number[],
        countIncludePad: c.countIncludePad as boolean };
      return { y: o.avgPool(v.x!, options), grads: { dx: o.avgPoolBackward(v.x!, dy, options) } };
    }
    case 'upsample': {
      const mode = c.mode as 'nearest' | 'linear';
      const y = o.upsample(v.x!, mode === 'linear'
        ? { size: c.size as number[], mode, alignCorners: c.alignCorners as boolean } : { size: c.size as number[], mode });
      const dx = o.upsampleBackward(dy, v.x!.shape, mode === 'linear' ? { mode, alignCorners: c.alignCorners as boolean } : { mode });
      return { y, grads: { dx } };
    }
    case 'batchNorm': {
      const training = c.training as boolean;
      const runningMean = o.scale(v.runningMeanBefore!, 1);
      const runningVar = o.scale(v.runningVarBefore!, 1);
      const r = o.batchNorm(v.x!, { gamma: v.gamma!, beta: v.beta!, runningMean, runningVar, training,
        momentum: c.momentum as number, eps: c.eps as number });
      const g = o.batchNormBackward(v.x!, dy, { gamma: v.gamma!, mean: r.mean, invStd: r.invStd, training });
      return {
        y: r.y,
        grads: { dx: g.dx, dgamma: g.dgamma, dbeta: g.dbeta, runningMeanAfter: runningMean, runningVarAfter: runningVar },
      };
    }
    case 'softmax': {
      const y = o.softmax(v.x!);
      return { y, grads: { dx: o.softmaxBackward(y, dy) } };
    }
    case 'pixelwise': {
      const g = o.pixelwiseBackward(v.x!, v.w!, dy);
      return { y: o.pixelwise(v.x!, v.w!, v.b!), grads: { dx: g.dx!, dw: g.dw!, db: g.db! } };
    }
    default:
      throw new Error(`golden fixture with unknown op ${c.op}`);
  }
}

const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();

test('the golden fixtures are present (conv2d, conv3d and max-filter at least)', (t) => {
  for (const needed of ['conv2d_basic', 'conv3d_basic', 'maxfilter2d_dilated', 'maxfilter3d_anisotropic']) {
    t.true(files.includes(`${needed}.safetensors`), `missing fixture ${needed}; run npm run fixtures`);
  }
});

for (const file of files) {
  for (const [implName, o] of [['optimized', optimized], ['reference', reference]] as const) {
    test(`${file.replace('.safetensors', '')} matches PyTorch (${implName})`, (t) => {
      const fixture = readSafetensors(path.join(dir, file));
      const c = JSON.parse(fixture.metadata.case!) as GoldenCase;
      const v: Record<string, Tensor> = {};
      for (const [name, a] of fixture.tensors) v[name] = Tensor.fromArray(a.data, a.shape);
      const { y, grads } = run(o, c, v);
      t.deepEqual(y.shape, fixture.tensors.get('y')!.shape, 'output shape');
      assertClose(t, y, fixture.tensors.get('y')!.data, tolerance, `${file} y`);
      for (const [name, grad] of Object.entries(grads)) {
        const expected = fixture.tensors.get(name);
        if (!expected) {
          t.fail(`${file}: the fixture has no ${name}`);
          continue;
        }
        t.deepEqual(grad.shape, expected.shape, `${name} shape`);
        assertClose(t, grad, expected.data, tolerance, `${file} ${name}`);
      }
    });
  }
}
