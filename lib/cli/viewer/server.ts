// `segvol view`'s HTTP server (node:http, no framework): the page's fixed assets, and a
// small JSON/binary API over the layers it was given. Safety: it listens on 127.0.0.1
// unless told otherwise, answers only requests whose Host header names it (which stops
// DNS rebinding), serves GET and HEAD only, and never maps a URL to a file: assets come
// from an allow-list read at start-up, volumes are named by layer id, and the only other
// files it opens were given on the command line (or derived from them at start-up).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import { segvolVersion } from '../../core/version';
import { ChunkBytesCache } from '../../io/chunk_store';
import { labelColours } from '../../io/panels';
import { drawRandCurves, evaluationCurves } from '../rand_plot';
import { describeLayer, integerParam, layerStats, openLayer, readSlice, readVoxel, sliceQuery, type Layer, type LayerSource, type Triple } from './layers';
import { LiveLog } from './live_log';

export interface ViewerOptions {
  layers: LayerSource[];
  /** Class names, from the model file (index = class id). */
  classes?: string[];
  /** A training log (JSON lines) to follow. */
  log?: string;
  /** A `segvol evaluate --out` result to show. */
  evaluation?: string;
  /** The voxel size (z, y, x) to draw with, for files that record none (.npy) or a wrong one. */
  spacing?: Triple;
  /** Memory for chunk bytes read lately (default 256 MiB; 0 reads every chunk from the store each time). */
  cacheMiB?: number;
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
  'Content-Security-Policy': "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * The names a browser may use for this server in its Host header: loopback, the --host value
 * and, when that is a wildcard (0.0.0.0, ::), this machine's name and interface addresses.
 */
function acceptedHostNames(host: string): Set<string> {
  const names = new Set([...loopbackHosts, host.toLowerCase(), `[${host.toLowerCase()}]`]);
  if (host === '0.0.0.0' || host === '::') {
    names.add(os.hostname().toLowerCase());
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) names.add(a.family === 'IPv6' ? `[${a.address.toLowerCase()}]` : a.address);
    }
  }
  return names;
}

/** Starts the viewer; resolves once it listens. */
export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  if (options.layers.length === 0 && !options.log && !options.evaluation) {
    throw new SegvolError('ERR_ARGUMENT', 'segvol view: give a volume to show, a training log (--log) or an evaluation (--eval)');
  }
  const assets = loadAssets();
  const layers: Layer[] = [];
  // Chunk bytes read lately, for panning back and moving between planes without reading again.
  const cache = new ChunkBytesCache((options.cacheMiB ?? 256) * 2 ** 20);
  for (const source of options.layers) layers.push(await openLayer(source, cache));
  if (options.spacing) for (const layer of layers) layer.spacing = options.spacing;
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
  const hostNames = acceptedHostNames(host);
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
    if (!spatial) throw new SegvolError('ERR_UNAVAILABLE', 'this viewer shows no volume');
    return (['z', 'y', 'x'] as const).map((name, a) => integerParam(params, name, 0, spatial[a] - 1)) as Triple;
  };

  const routes: Record<string, (res: http.ServerResponse, params: URLSearchParams) => Promise<void> | void> = {
    '/': (res) => send(res, 200, assets.get('index.html')!.type, assets.get('index.html')!.bytes),
    // Browsers ask for it unprompted: nothing, rather than a refusal in the console.
    '/favicon.ico': (res) => send(res, 204, 'image/x-icon', ''),
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
        'X-Segvol-Slice': JSON.stringify({
          rows: slice.rows, cols: slice.cols, level: q.level, factor: slice.factor, r0: q.r0, c0: q.c0, step: q.step,
          dtype: slice.data instanceof Float64Array ? 'float64' : 'float32',
        }),
      });
    },
    '/api/voxel': async (res, params) => {
      const at = voxelOf(params);
      const values: Record<string, number[]> = {};
      for (const layer of layers) values[layer.id] = await readVoxel(layer, at);
      json(res, { at, values });
    },
    '/api/stats': (res, params) => json(res, {
      layers: Object.fromEntries(layers.map((l) => [l.id, layerStats(l, params.get('keys') === '1')])),
      cache: { bytes: cache.size, hits: cache.hits, maxBytes: cache.maxBytes },
    }),
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
      const m = /^(.*?)(?::(\d+))?$/.exec(hostHeader)!;
      // Browsers leave out port 80.
      const samePort = m[2] === undefined ? port === 80 : Number(m[2]) === port;
      if (!samePort || !hostNames.has(m[1]!)) {
        throw new SegvolError('ERR_ACCESS', `refused: Host ${JSON.stringify(req.headers.host ?? '')} is not this viewer (${host}:${port}); open it by the address segvol view printed`);
      }
      // A page of another site may send requests here (it cannot read the replies); refuse them before any work.
      if (req.headers['sec-fetch-site'] === 'cross-site') throw new SegvolError('ERR_ACCESS', 'refused: a request from another site');
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
    server.once('error', (error: NodeJS.ErrnoException) => {
      live?.close();  // its file watch would keep the process alive
      reject(new SegvolError('ERR_ARGUMENT', `segvol view: cannot listen on ${host}:${options.port ?? 0}: ${error.message}; give another --port (0 picks a free one)`));
    });
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
