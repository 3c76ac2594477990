// A small DAG container: named inputs, layer nodes, and joins (sum, multiply,
// concatenate over channels), for skip connections, feature multiplication and
// second input streams (recursive training, multi-modal encoders). Parameters are
// named "nodes.{name}.{param}". Nodes are given in execution order.
import { SegvolError } from './errors';
import type { Layer, LayerBuilder, Tape } from './layers';
import { ModelBase, ModelTape } from './model';
import { ops } from './ops';
import { Random, seededRandom } from './random';
import { Tensor } from './tensor';

export type JoinKind = 'sum' | 'mul' | 'concat';

export type GraphNode =
  | { name: string; layer: LayerBuilder; input: string }
  | { name: string; join: JoinKind; inputs: readonly string[] };

export interface GraphOptions {
  /** Input names and their channel counts, e.g. { image: 3, boundary: 1 }. */
  inputs: Record<string, number>;
  nodes: readonly GraphNode[];
  /** The node whose value is the model's output (default: the last node). */
  output?: string;
  seed?: number;
}

type Built = { name: string; kind: 'layer'; layer: Layer; inputs: string[] } | { name: string; kind: JoinKind; inputs: string[] };

/** Concatenates (N, C_i, ...) tensors along channels. */
function concatChannels(xs: readonly Tensor[]): Tensor {
  const n = xs[0]!.shape[0]!;
  const spatial = xs[0]!.shape.slice(2);
  const s = spatial.reduce((a, b) => a * b, 1);
  const channels = xs.reduce((c, x) => c + x.shape[1]!, 0);
  const out = new Float32Array(n * channels * s);
  let offset = 0;
  for (const x of xs) {
    const c = x.shape[1]!;
    const data = x.toArray();
    for (let b = 0; b < n; ++b) out.set(data.subarray(b * c * s, (b + 1) * c * s), (b * channels + offset) * s);
    offset += c;
  }
  return Tensor.fromArray(out, [n, channels, ...spatial], { device: xs[0]!.device });
}

/** The inverse of concatChannels for a gradient. */
function splitChannels(g: Tensor, sizes: readonly number[]): Tensor[] {
  const n = g.shape[0]!, channels = g.shape[1]!;
  const spatial = g.shape.slice(2);
  const s = spatial.reduce((a, b) => a * b, 1);
  const data = g.toArray();
  let offset = 0;
  return sizes.map((c) => {
    const out = new Float32Array(n * c * s);
    for (let b = 0; b < n; ++b) out.set(data.subarray((b * channels + offset) * s, (b * channels + offset + c) * s), b * c * s);
    offset += c;
    return Tensor.fromArray(out, [n, c, ...spatial], { device: g.device });
  });
}

interface GraphTapeData {
  values: Map<string, Tensor>;
  tapes: Map<string, Tape>;
}

export class Graph extends ModelBase {
  readonly random: Random;
  readonly inputs: Record<string, number>;
  readonly output: string;
  private readonly nodes: Built[] = [];
  private readonly channels = new Map<string, number>();

  constructor(options: GraphOptions) {
    super();
    this.inputs = { ...options.inputs };
    this.random = new Random((options.seed ?? 0) ^ 0x5eed);
    const random = seededRandom(options.seed ?? 0);
    for (const [name, c] of Object.entries(options.inputs)) {
      if (!Number.isInteger(c) || c < 1) throw new SegvolError('ERR_ARGUMENT', `graph: input '${name}' needs a positive channel count, received ${c}`);
      this.channels.set(name, c);
    }
    for (const node of options.nodes) {
      if (this.channels.has(node.name)) throw new SegvolError('ERR_ARGUMENT', `graph: the name '${node.name}' is used twice`);
      const inputs = 'layer' in node ? [node.input] : [...node.inputs];
      for (const input of inputs) {
        if (!this.channels.has(input)) {
          throw new SegvolError('ERR_ARGUMENT', `graph: node '${node.name}' reads '${input}', which is neither an input nor an earlier node; ` +
            `known so far: ${[...this.channels.keys()].join(', ')}`);
        }
      }
      if ('layer' in node) {
        const layer = node.layer.build({ inChannels: this.channels.get(node.input)!, random });
        this.nodes.push({ name: node.name, kind: 'layer', layer, inputs });
        this.channels.set(node.name, layer.outChannels);
      } else {
        if (inputs.length < 2) throw new SegvolError('ERR_ARGUMENT', `graph: join '${node.name}' needs at least two inputs`);
        if (!['sum', 'mul', 'concat'].includes(node.join)) {
          throw new SegvolError('ERR_ARGUMENT', `graph: join '${node.name}' has unknown kind '${String(node.join)}' (sum, mul, concat)`);
        }
        const cs = inputs.map((i) => this.channels.get(i)!);
        if (node.join !== 'concat' && cs.some((c) => c !== cs[0])) {
          throw new SegvolError('ERR_SHAPE', `nodes.${node.name} (${node.join}): expected inputs with equal channels, received ` +
            inputs.map((i, k) => `${i}: ${cs[k]}`).join(', '));
        }
        this.nodes.push({ name: node.name, kind: node.join, inputs });
        this.channels.set(node.name, node.join === 'concat' ? cs.reduce((a, b) => a + b, 0) : cs[0]!);
      }
    }
    this.output = options.output ?? this.nodes[this.nodes.length - 1]?.name ?? '';
    if (!this.nodes.some((n) => n.name === this.output)) throw new SegvolError('ERR_ARGUMENT', `graph: output '${this.output}' is not a node`);
  }

  get inChannels(): number {
    const names = Object.keys(this.inputs);
    return names.length === 1 ? this.inputs[names[0]!]! : names.reduce((c, n) => c + this.inputs[n]!, 0);
  }

  get outChannels(): number {
    return this.channels.get(this.output)!;
  }

  protected namedLayers(): Array<[string, Layer]> {
    return this.nodes.filter((n): n is Extract<Built, { kind: 'layer' }> => n.kind === 'layer').map((n) => [`nodes.${n.name}`, n.layer]);
  }

  private inputMap(x: Tensor | Record<string, Tensor>): Map<string, Tensor> {
    const names = Object.keys(this.inputs);
    if (x instanceof Tensor) {
      if (names.length !== 1) throw new SegvolError('ERR_ARGUMENT', `graph: expected inputs ${names.join(', ')} by name, received one tensor`);
      return new Map([[names[0]!, x]]);
    }
    const out = new Map<string, Tensor>();
    for (const name of names) {
      if (!(x[name] instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `graph: missing input '${name}'`);
      out.set(name, x[name]!);
    }
    return out;
  }

  /** Shapes of every node for input shapes (one shape for a single-input graph). */
  shapes(inputShapes: readonly number[] | Record<string, readonly number[]>): Map<string, number[]> {
    const names = Object.keys(this.inputs);
    const shapes = new Map<string, number[]>();
    for (const name of names) {
      const shape = Array.isArray(inputShapes) ? [...inputShapes] : [...(inputShapes as Record<string, readonly number[]>)[name] ?? []];
      if (shape[1] !== this.inputs[name]) {
        throw new SegvolError('ERR_SHAPE', `graph input '${name}': expected ${this.inputs[name]} channels, received (${shape.join(', ')})`);
      }
      shapes.set(name, shape);
    }
    for (const node of this.nodes) {
      const ins = node.inputs.map((i) => shapes.get(i)!);
      if (node.kind === 'layer') {
        shapes.set(node.name, node.layer.outputShape(ins[0]!, `nodes.${node.name}`));
      } else {
        const spatial = (s: number[]) => [s[0], ...s.slice(2)].join(', ');
        if (ins.some((s) => spatial(s) !== spatial(ins[0]!) || s.length !== ins[0]!.length)) {
          throw new SegvolError('ERR_SHAPE', `nodes.${node.name} (${node.kind}): expected inputs of one batch and spatial size, received ` +
            node.inputs.map((i, k) => `${i} (${ins[k]!.join(', ')})`).join(', '));
        }
        const channels = node.kind === 'concat' ? ins.reduce((c, s) => c + s[1]!, 0) : ins[0]![1]!;
        shapes.set(node.name, [ins[0]![0]!, channels, ...ins[0]!.slice(2)]);
      }
    }
    return shapes;
  }

  outputShape(inputShape: readonly number[] | Record<string, readonly number[]>): number[] {
    return this.shapes(inputShape).get(this.output)!;
  }

  summary(inputShape: readonly number[] | Record<string, readonly number[]>): string {
    const shapes = this.shapes(inputShape);
    return this.table(this.namedLayers().map(([path, layer]) => [path, layer, shapes.get(path.slice('nodes.'.length))!]));
  }

  async forward(x: Tensor | Record<string, Tensor>, options: { keepTape?: boolean; training?: boolean } = {}) {
    const inputs = this.inputMap(x);
    this.shapes(Object.fromEntries([...inputs].map(([k, v]) => [k, v.shape])));
    const mode = { training: options.training ?? options.keepTape ?? false, keepTape: options.keepTape ?? false, random: () => this.random.next() };
    const values = new Map<string, Tensor>(inputs);
    const tapes = new Map<string, Tape>();
    for (const node of this.nodes) {
      const ins = node.inputs.map((i) => values.get(i)!);
      if (node.kind === 'layer') {
        const r = await node.layer.forward(ins[0]!, mode);
        values.set(node.name, r.y);
        tapes.set(node.name, r.tape);
      } else if (node.kind === 'concat') {
        values.set(node.name, concatChannels(ins));
      } else {
        let acc = node.kind === 'sum' ? ops.add(ins[0]!, ins[1]!) : ops.mul(ins[0]!, ins[1]!);
        for (const more of ins.slice(2)) {
          const next = node.kind === 'sum' ? ops.add(acc, more) : ops.mul(acc, more);
          acc.dispose();
          acc = next;
        }
        values.set(node.name, acc);
      }
    }
    const output = values.get(this.output)!;
    const y = output.reshape(output.shape);
    const owned = [...values].filter(([k]) => !inputs.has(k)).map(([, v]) => v);
    const tape = new ModelTape([...tapes.values()], owned);
    (tape as unknown as { graph: GraphTapeData }).graph = { values, tapes };
    if (!options.keepTape) tape.dispose();
    return { y, tape };
  }

  /** dx is the gradient of the (single) input; dxs holds every input's by name. */
  async backward(tape: ModelTape, dy: Tensor): Promise<{ dx: Tensor; dxs: Map<string, Tensor>; grads: Map<string, Tensor> }> {
    const data = (tape as unknown as { graph?: GraphTapeData }).graph;
    if (!data || data.values.size === 0) {
      throw new SegvolError('ERR_ARGUMENT', 'graph.backward: expected the tape of forward(x, { keepTape: true }) that was not disposed');
    }
    const gradients = new Map<string, Tensor>([[this.output, dy.reshape(dy.shape)]]);
    const accumulate = (name: string, g: Tensor) => {
      const prior = gradients.get(name);
      if (prior) {
        gradients.set(name, ops.add(prior, g));
        prior.dispose();
        g.dispose();
      } else {
        gradients.set(name, g);
      }
    };
    const grads = new Map<string, Tensor>();
    for (let k = this.nodes.length - 1; k >= 0; --k) {
      const node = this.nodes[k]!;
      const g = gradients.get(node.name);
      if (!g) continue;  // the node does not reach the output
      gradients.delete(node.name);
      if (node.kind === 'layer') {
        const r = await node.layer.backward(data.tapes.get(node.name)!, g);
        for (const [name, t] of r.grads) grads.set(`nodes.${node.name}.${name}`, t);
        accumulate(node.inputs[0]!, r.dx);
      } else if (node.kind === 'sum') {
        for (const input of node.inputs) accumulate(input, g.reshape(g.shape));
      } else if (node.kind === 'concat') {
        const parts = splitChannels(g, node.inputs.map((i) => data.values.get(i)!.shape[1]!));
        node.inputs.forEach((input, i) => accumulate(input, parts[i]!));
      } else {
        // d(prod)/d(x_i) = g * prod of the others
        node.inputs.forEach((input, i) => {
          let acc = g.reshape(g.shape);
          node.inputs.forEach((other, j) => {
            if (j === i) return;
            const next = ops.mul(acc, data.values.get(other)!);
            acc.dispose();
            acc = next;
          });
          accumulate(input, acc);
        });
      }
      g.dispose();
    }
    const dxs = new Map<string, Tensor>();
    for (const name of Object.keys(this.inputs)) {
      dxs.set(name, gradients.get(name) ?? Tensor.zeros(data.values.get(name)!.shape, { device: data.values.get(name)!.device }));
    }
    return { dx: dxs.values().next().value!, dxs, grads };
  }
}

export function graph(options: GraphOptions): Graph {
  return new Graph(options);
}
