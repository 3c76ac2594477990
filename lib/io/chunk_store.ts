// zarrita stores wrapped for a reader that wants to know what it reads: each chunk read is
// told (metadata reads are not chunks), and recently read chunk bytes can be kept in memory,
// least recently used out, so that a region read again costs no file or network read.
export interface ZarrStore {
  get(key: string, options?: unknown): unknown;
  getRange?: (key: string, ...rest: unknown[]) => unknown;
}

/** Chunk bytes kept across reads (one cache may serve several arrays: keys carry the store). */
export class ChunkBytesCache {
  private readonly entries = new Map<string, Uint8Array | undefined>();
  private bytes = 0;
  /** Reads answered from memory. */
  hits = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.bytes;
  }

  lookup(key: string): { found: boolean; value: Uint8Array | undefined } {
    if (!this.entries.has(key)) return { found: false, value: undefined };
    const value = this.entries.get(key);
    this.entries.delete(key);
    this.entries.set(key, value);  // most recent last
    this.hits += 1;
    return { found: true, value };
  }

  keep(key: string, value: Uint8Array | undefined): void {
    const size = value?.byteLength ?? 0;
    if (size > this.maxBytes) return;
    this.entries.set(key, value);
    this.bytes += size;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v?.byteLength ?? 0;
    }
  }
}

const metadata = /(^|\/)(\.zarray|\.zattrs|\.zgroup|\.zmetadata|zarr\.json)$/;

/**
 * The store, telling `onChunk` each chunk key read (sharded arrays' byte ranges included) and,
 * with a cache, answering repeated chunk reads from it (`root` names the store in its keys).
 */
export function watchedStore(plain: ZarrStore, root: string, options: { onChunk?: (key: string) => void; cache?: ChunkBytesCache }): ZarrStore {
  const { onChunk, cache } = options;
  if (!onChunk && !cache) return plain;
  const told = (key: string) => {
    if (!metadata.test(key)) onChunk?.(key.replace(/^\/+/, ''));
  };
  return {
    get: async (key, o) => {
      if (metadata.test(key) || !cache) {
        told(key);
        return plain.get(key, o);
      }
      const hit = cache.lookup(`${root}|${key}`);
      if (hit.found) return hit.value;
      told(key);
      const value = await (plain.get(key, o) as Promise<Uint8Array | undefined>);
      cache.keep(`${root}|${key}`, value);
      return value;
    },
    ...(plain.getRange ? { getRange: (key: string, ...rest: unknown[]) => (told(key), plain.getRange!(key, ...rest)) } : {}),
  };
}
