/** A small seeded generator (mulberry32) whose state can be saved and restored (checkpoints). */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  getState(): number {
    return this.state;
  }
  setState(state: number): void {
    this.state = state >>> 0;
  }

  /**
   * A generator of its own for (seed, ...keys), the same wherever it is made: window g of
   * step s draws from Random.derived(seed, s, g), so any process can draw any window
   * without drawing the ones before it (data-parallel ranks split a batch this way).
   */
  static derived(seed: number, ...keys: number[]): Random {
    let h = seed >>> 0;
    for (const k of keys) h = mix32((h ^ Math.imul((k >>> 0) + 0x9e3779b9, 0x85ebca6b)) >>> 0);
    return new Random(mix32(h ^ keys.length));
  }
}

/** MurmurHash3's 32-bit finaliser: every input bit moves every output bit. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A function form of Random, for initialisers. */
export function seededRandom(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

/** U(-scale, scale) values. */
export function uniformArray(size: number, scale: number, random: () => number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; ++i) out[i] = (random() * 2 - 1) * scale;
  return out;
}
