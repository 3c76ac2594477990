/** A small seeded generator (mulberry32): the same seed gives the same weights on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** U(-scale, scale) values. */
export function uniformArray(size: number, scale: number, random: () => number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; ++i) out[i] = (random() * 2 - 1) * scale;
  return out;
}
