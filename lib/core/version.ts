import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

/** segvol's version, from its package.json (lib/core from sources, dist/lib/core when built). */
export function segvolVersion(): string {
  if (cached === undefined) {
    const file = [path.join(__dirname, '..', '..', '..', 'package.json'), path.join(__dirname, '..', '..', 'package.json')]
      .find((p) => fs.existsSync(p) && (JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string }).name === 'segvol');
    cached = file ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version : 'unknown';
  }
  return cached;
}
