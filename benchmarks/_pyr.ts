import { formatProfile, ops, profile, Tensor } from '../lib';
const r = (s: number[]) => Tensor.fromArray(Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => Math.random() - 0.5), s);
const C = Number(process.argv[2] ?? 5), O = Number(process.argv[3] ?? 16), k = 7;
const x = r([1, C, 8, 64, 64]);
const w = [0, 1, 2, 3, 4, 5].map(() => ({ wx: r([4 * O, C, k, k]), bx: r([4 * O]), wh: r([4 * O, O, k, k]), bh: r([4 * O]) }));
const dy = Tensor.full([1, O, 8, 64, 64], 1);
void (async () => {
  for (let i = 0; i < 2; ++i) ops.pyramidLstmBackward(ops.pyramidLstm(x, w).saved, dy);
  const t0 = Date.now();
  const { records } = await profile(() => { ops.pyramidLstmBackward(ops.pyramidLstm(x, w).saved, dy); });
  console.log('wall', Date.now() - t0);
  console.log(formatProfile(records, 25));
})();
