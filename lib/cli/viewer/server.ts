// `segvol view`'s HTTP server (node:http, no framework): the page's fixed assets, and a
// small JSON/binary API over the layers it was given. Safety: it listens on 127.0.0.1
// unless told otherwise, answers only requests whose Host header names it (which stops
// DNS rebinding), serves GET and HEAD only, and never maps a URL to a file: assets come
// from an allow-list read at start-up, volumes are named by layer id, and the only other
// files it opens were given on the command line (or derived from them at start-up).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import { segvolVersion } from '../../core/version';
import { labelColours } from '../../io/panels';
import { drawRandCurves, evaluationCurves } from '../rand_plot';
import { describeLayer, layerStats, openLayer, readSlice, readVoxel, sliceQuery, type Layer, type LayerSource, type Triple } from './layers';
import { LiveLog } from './live_log';

export interface ViewerOptions {
  layers: LayerSource[];
  /** Class names, from the model file (index = class id). */
  classes?: string[];
  /** A training log (JSON lines) to follow. */
  log?: string;
  /** A `segvol evaluate --out` result to show. */
  evaluation?: string;
  /** The address to listen on (127.0.0.1 by default). */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface Viewer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const assetTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
};

/** The page's files, read once: lib/cli/viewer/assets beside the sources, or from the package when running from dist/. */
function loadAssets(): Map<string, { type: string; bytes: Buffer }> {
  const dir = [path.join(__dirname, 'assets'), path.join(__dirname, '..', '..', '..', '..', 'lib', 'cli', 'viewer', 'assets')].find((d) => fs.existsSync(path.join(d, 'index.html')));
  if (!dir) throw new SegvolError('ERR_NOT_BUILT', `the viewer's page is missing (looked in ${path.join(__dirname, 'assets')}); reinstall segvol`);
  const assets = new Map<string, { type: string; bytes: Buffer }>();
  for (const name of fs.readdirSync(dir)) {
    const type = assetTypes[path.extname(name)];
    if (type) assets.set(name, { type, bytes: fs.readFileSync(path.join(dir, name)) });
  }
  return assets;
}

const statusOf: Partial<Record<string, number>> = { ERR_ACCESS: 403, ERR_ARGUMENT: 400, ERR_SHAPE: 400, ERR_FORMAT: 422, ERR_UNAVAILABLE: 404 };

const securityHeaders = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; script-src 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Starts the viewer; resolves once it listens. */
export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  if (options.layers.length === 0 && !options.log && !options.evaluation) {
    throw new SegvolError('ERR_ARGUMENT', 'segvol view: give a volume to show, a training log (--log) or an evaluation (--eval)');
  }
  const assets = loadAssets();
  const layers: Layer[] = [];
  for (const source of options.layers) layers.push(await openLayer(source));
  const spatial = layers[0]?.levels[0]!.shape;
  for (const layer of layers) {
    if (layer.levels[0]!.shape.join() !== spatial!.join()) {
      throw new SegvolError('ERR_SHAPE', `segvol view: ${layer.name} is (${layer.levels[0]!.shape.join(', ')}), ${layers[0]!.name} (${spatial!.join(', ')}); every layer must cover the same voxels`);
    }
  }
  let evaluation: Record<string, unknown> | undefined;
  if (options.evaluation) {
    try {
      evaluation = JSON.parse(fs.readFileSync(options.evaluation, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new SegvolError('ERR_ARGUMENT', `segvol view: cannot read the evaluation ${options.evaluation}: ${(error as Error).message}; write one with segvol evaluate --out`);
    }
  }
  const live = options.log ? new LiveLog(options.log) : undefined;
  const host = options.host ?? '127.0.0.1';
  let port = 0;

  const send = (res: http.ServerResponse, status: number, type: string, body: Buffer | string, extra: Record<string, string> = {}) => {
    res.writeHead(status, { ...securityHeaders, 'Content-Type': type, ...extra });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const json = (res: http.ServerResponse, value: unknown) => send(res, 200, 'application/json', JSON.stringify(value));
  const layerOf = (params: URLSearchParams): Layer => {
    const id = params.get('layer') ?? '';
    const layer = layers.find((l) => l.id === id);
    if (!layer) throw new SegvolError('ERR_ACCESS', `no layer ${JSON.stringify(id)}; this viewer serves ${layers.map((l) => l.id).join(', ') || 'no volumes'}`);
    return layer;
  };
  const voxelOf = (params: URLSearchParams): Triple => {
    const shape = spatial!;
    return (['z', 'y', 'x'] as const).map((name, a) => {
      const v = Number(params.get(name));
      if (!Number.isInteger(v) || v < 0 || v >= shape[a]!) throw new SegvolError('ERR_ARGUMENT', `${name} must be an integer in 0..${shape[a]! - 1}, received ${JSON.stringify(params.get(name))}`);
      return v;
    }) as Triple;
  };

  const routes: Record<string, (res: http.ServerResponse, params: URLSearchParams) => Promise<void> | void> = {
    '/': (res) => send(res, 200, assets.get('index.html')!.type, assets.get('index.html')!.bytes),
    '/api/info': (res) => json(res, {
      version: segvolVersion(), shape: spatial ?? null, layers: layers.map(describeLayer), classes: options.classes ?? [],
      palette: labelColours, log: live !== undefined, evaluation: evaluation !== undefined,
    }),
    '/api/slice': async (res, params) => {
      const layer = layerOf(params);
      const q = sliceQuery(layer, params);
      const slice = await readSlice(layer, q);
      const body = Buffer.from(slice.data.buffer, slice.data.byteOffset, slice.data.byteLength);
      send(res, 200, 'application/octet-stream', body, {
        'X-Segvol-Slice': JSON.stringify({ rows: slice.rows, cols: slice.cols, level: q.level, factor: slice.factor, r0: q.r0, c0: q.c0 }),
      });
    },
    '/api/voxel': async (res, params) => {
      const at = voxelOf(params);
      const values: Record<string, number[]> = {};
      for (const layer of layers) values[layer.id] = await readVoxel(layer, at);
      json(res, { at, values });
    },
    '/api/stats': (res) => json(res, { layers: Object.fromEntries(layers.map((l) => [l.id, layerStats(l)])) }),
    '/api/log': (res) => {
      if (!live) throw new SegvolError('ERR_UNAVAILABLE', 'this viewer follows no training log; start it with --log <model>.log.jsonl');
      live.poll();  // the file is watched every half second; a direct question gets the latest lines
      json(res, live.summary());
    },
    '/api/log/events': (res) => {
      if (!live) throw new SegvolError('ERR_UNAVAILABLE', 'this viewer follows no training log; start it with --log <model>.log.jsonl');
      live.subscribe(res);
    },
    '/api/log/plot.png': (res) => {
      const png = live?.chartPng();
      if (!png) throw new SegvolError('ERR_UNAVAILABLE', 'the training log holds no steps yet');
      send(res, 200, 'image/png', png);
    },
    '/api/log/validation.png': (res) => {
      if (!live || !fs.existsSync(live.slicePath)) throw new SegvolError('ERR_UNAVAILABLE', 'no validation slice has been written yet');
      send(res, 200, 'image/png', fs.readFileSync(live.slicePath));
    },
    '/api/evaluation': (res) => {
      if (!evaluation) throw new SegvolError('ERR_UNAVAILABLE', 'this viewer shows no evaluation; start it with --eval <result.json> (segvol evaluate --out)');
      json(res, evaluation);
    },
    '/api/evaluation/rand.png': (res) => {
      const curves = evaluation ? evaluationCurves(evaluation) : [];
      if (!curves.length) throw new SegvolError('ERR_UNAVAILABLE', 'the evaluation has no Rand curves (they come from segvol evaluate --boundary)');
      send(res, 200, 'image/png', drawRandCurves(curves));
    },
  };

  const server = http.createServer((req, res) => {
    const fail = (error: unknown) => {
      const code = error instanceof SegvolError || (error as { code?: string }).code?.startsWith?.('ERR_') ? (error as SegvolError).code : 'ERR_NATIVE';
      const status = statusOf[code] ?? 500;
      if (res.headersSent) return void res.end();
      send(res, status, 'application/json', JSON.stringify({ code, message: (error as Error).message }));
    };
    try {
      const hostHeader = (req.headers.host ?? '').toLowerCase();
      const named = hostHeader.replace(/:\d+$/, '');
      const allowed = hostHeader.endsWith(`:${port}`) && (loopbackHosts.has(named) || named === host.toLowerCase() || named === `[${host.toLowerCase()}]`);
      if (!allowed) throw new SegvolError('ERR_ACCESS', `refused: Host ${JSON.stringify(req.headers.host ?? '')} is not this viewer (${host}:${port})`);
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new SegvolError('ERR_ACCESS', `refused: ${req.method} (the viewer only reads)`);
      const url = new URL(req.url ?? '/', 'http://viewer');
      const route = routes[url.pathname];
      if (route) {
        Promise.resolve(route(res, url.searchParams)).catch(fail);
        return;
      }
      const asset = /^\/assets\/([A-Za-z0-9_-]+\.(?:js|css|html))$/.exec(url.pathname);
      const file = asset ? assets.get(asset[1]!) : undefined;
      if (!file) throw new SegvolError('ERR_ACCESS', `refused: ${url.pathname} is not one of the viewer's files`);
      send(res, 200, file.type, file.bytes);
    } catch (error) {
      fail(error);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new SegvolError('ERR_ARGUMENT', `segvol view: cannot listen on ${host}:${options.port ?? 0}: ${error.message}`)));
    server.listen(options.port ?? 0, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`, port,
    close: () => new Promise<void>((resolve) => {
      live?.close();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
