// Recently read input chunks, kept for the next region: out-of-core blocks read their input
// with a halo (the field of view and the windows that reach past the block), so neighbouring
// blocks read the same chunks, and decoding them again would cost more than the volume
// predicted in memory reads. Bounded by bytes; the chunks read least recently go first.
import type { ZarrArray } from '../io/zarr';

/** An array whose reads go through whole cached chunks (at most `maxBytes` of them, decoded). */
export function cachedChunks(array: ZarrArray, maxBytes: number): ZarrArray {
  const rank = array.shape.length;
  const chunks = array.shape.map((n, a) => Math.max(1, Math.min(array.chunks[a] ?? n, n)));
  const cache = new Map<string, { start: number[]; size: number[]; data: Float32Array }>();
  let bytes = 0;
  const chunk = async (index: readonly number[]) => {
    const key = index.join(',');
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key);
      cache.set(key, hit);  // most recent last
      return hit;
    }
    const start = index.map((i, a) => i * chunks[a]!);
    const size = start.map((s, a) => Math.min(chunks[a]!, array.shape[a]! - s));
    const entry = { start, size, data: await array.read(start, size) };
    cache.set(key, entry);
    bytes += entry.data.byteLength;
    for (const [k, e] of cache) {
      if (bytes <= maxBytes || k === key) break;
      cache.delete(k);
      bytes -= e.data.byteLength;
    }
    return entry;
  };
  return {
    ...array,
    readExact: undefined,
    async read(start, size) {
      // Out-of-range regions are the array's to refuse.
      if (start.length !== rank || size.length !== rank || start.some((s, a) => s < 0 || size[a]! < 1 || s + size[a]! > array.shape[a]!)) return array.read(start, size);
      const out = new Float32Array(size.reduce((p, v) => p * v, 1));
      const first = start.map((s, a) => Math.floor(s / chunks[a]!)), last = start.map((s, a) => Math.floor((s + size[a]! - 1) / chunks[a]!));
      const index = [...first];
      for (;;) {
        const c = await chunk(index);
        // The overlap of the chunk and the region, copied row by row (the last axis contiguous).
        const lo = start.map((s, a) => Math.max(s, c.start[a]!)), hi = start.map((s, a) => Math.min(s + size[a]!, c.start[a]! + c.size[a]!));
        const row = hi[rank - 1]! - lo[rank - 1]!;
        const at = lo.slice(0, rank - 1);
        for (;;) {
          let src = 0, dst = 0;
          for (let a = 0; a < rank; ++a) {
            const v = a < rank - 1 ? at[a]! : lo[a]!;
            src = src * c.size[a]! + v - c.start[a]!;
            dst = dst * size[a]! + v - start[a]!;
          }
          out.set(c.data.subarray(src, src + row), dst);
          let a = rank - 2;
          for (; a >= 0; --a) {
            if (++at[a]! < hi[a]!) break;
            at[a] = lo[a]!;
          }
          if (a < 0) break;
        }
        let a = rank - 1;
        for (; a >= 0; --a) {
          if (++index[a]! <= last[a]!) break;
          index[a] = first[a]!;
        }
        if (a < 0) break;
      }
      return out;
    },
  };
}
