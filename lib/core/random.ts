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
