// A DAG of layers and joins (sum, multiply, concatenate over channels) over named
// inputs, with one or more named outputs: skip connections, feature
// multiplication, second input streams (recursive training, multi-modal
// encoders). Parameters are named "nodes.{name}.{param}". Nodes are given in
// execution order.
import { SegvolError } from '../core/errors';
import { seededRandom } from '../core/random';
import type { Tensor } from '../core/tensor';
import { ops } from '../ops';
import type { Layer, LayerBuilder } from './layer';
import { ModelBase, type ModelInput, type ModelInputShape, type RunOptions } from './model';
import { positiveIntegerField } from '../core/validate';

export type JoinKind = 'sum' | 'mul' | 'concat';

export type GraphNode =
  | { name: string; layer: LayerBuilder; input: string }
  | { name: string; join: JoinKind; inputs: readonly string[] };

export interface GraphOptions {
  /** Input names and their channel counts, e.g. { image: 1, boundary: 1 }. */
  inputs: Record<string, number>;
  nodes: readonly GraphNode[];
  /** The node whose value is the model's output (default: the last node). */
  output?: string;
  /** Several outputs (forwardOutputs returns each; forward the first); instead of output. */
  outputs?: readonly string[];
  seed?: number;
}

type Built = { name: string; kind: 'layer'; layer: Layer; inputs: string[] } | { name: string; kind: JoinKind; inputs: string[] };

export class Graph extends ModelBase {
  readonly inputs: Readonly<Record<string, number>>;
  override readonly outputNames: readonly string[];
  private readonly nodes: Built[] = [];
  private readonly channels = new Map<string, number>();
  /** The index of the last node reading each value: values are freed after it. */
  private readonly lastUse = new Map<string, number>();

  constructor(options: GraphOptions) {
    super(options.seed ?? 0);
    this.inputs = { ...options.inputs };
    const random = seededRandom(options.seed ?? 0);
    for (const [name, c] of Object.entries(options.inputs)) {
      this.channels.set(name, positiveIntegerField(c, `graph: input '${name}'`, 'its channel count'));
    }
    options.nodes.forEach((node, index) => {
      if (this.channels.has(node.name)) throw new SegvolError('ERR_ARGUMENT', `graph: the name '${node.name}' is used twice`);
      const inputs = 'layer' in node ? [node.input] : [...node.inputs];
      for (const input of inputs) {
        if (!this.channels.has(input)) {
          throw new SegvolError('ERR_ARGUMENT', `graph: node '${node.name}' reads '${input}', which is neither an input nor an earlier node; ` +
            `known so far: ${[...this.channels.keys()].join(', ')}`);
        }
        this.lastUse.set(input, index);
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
    });
    if (options.output !== undefined && options.outputs !== undefined) {
      throw new SegvolError('ERR_ARGUMENT', 'graph: give output or outputs, not both');
    }
    this.outputNames = options.outputs ? [...options.outputs] : [options.output ?? this.nodes[this.nodes.length - 1]?.name ?? ''];
    this.describedAs({
      kind: 'graph', inputs: { ...options.inputs }, seed: options.seed ?? 0, outputs: [...this.outputNames],
      nodes: options.nodes.map((n) => ('layer' in n ? { name: n.name, layer: { type: n.layer.type, options: n.layer.options }, input: n.input }
        : { name: n.name, join: n.join, inputs: [...n.inputs] })),
    });
    if (this.outputNames.length === 0) throw new SegvolError('ERR_ARGUMENT', 'graph: outputs is empty');
    for (const output of this.outputNames) {
      if (!this.nodes.some((n) => n.name === output)) throw new SegvolError('ERR_ARGUMENT', `graph: output '${output}' is not a node`);
    }
  }

  /** The primary output's node name. */
  get output(): string {
    return this.outputNames[0]!;
  }

  get outChannels(): number {
    return this.channels.get(this.output)!;
  }

  protected namedLayers(): Array<[string, Layer]> {
    return this.nodes.filter((n): n is Extract<Built, { kind: 'layer' }> => n.kind === 'layer').map((n) => [`nodes.${n.name}`, n.layer]);
  }

  /** Shapes of every node for input shapes (one shape for a single-input graph). */
  shapes(inputShapes: ModelInputShape): Map<string, number[]> {
    const shapes = this.inputShapes(inputShapes);
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

  outputShape(inputShape: ModelInputShape): number[] {
    return this.shapes(inputShape).get(this.output)!;
  }

  summary(inputShape: ModelInputShape): string {
    const shapes = this.shapes(inputShape);
    return this.table(this.namedLayers().map(([path, layer]) => [path, layer, shapes.get(path.slice('nodes.'.length))!]));
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const outputs = await this.run(x, options, [this.output]);
    return outputs[this.output]!;
  }

  override async forwardOutputs(x: ModelInput, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    return this.run(x, options, this.outputNames);
  }

  private async run(x: ModelInput, options: RunOptions, wanted: readonly string[]): Promise<Record<string, Tensor>> {
    const inputs = this.inputMap(x);
    this.shapes(Object.fromEntries([...inputs].map(([k, v]) => [k, v.shape])));
    const mode = this.mode(options);
    const values = new Map<string, Tensor>(inputs);
    const keep = new Set(wanted);
    // A tape keeps its own views of what backward needs, so values go after their last reader.
    const release = (index: number) => {
      for (const name of this.nodes[index]!.inputs) {
        if (this.lastUse.get(name) === index && !inputs.has(name) && !keep.has(name)) values.get(name)?.dispose();
      }
    };
    for (let k = 0; k < this.nodes.length; ++k) {
      const node = this.nodes[k]!;
      const ins = node.inputs.map((i) => values.get(i)!);
      let value: Tensor;
      if (node.kind === 'layer') {
        value = await this.runLayer(`nodes.${node.name}`, node.layer, ins[0]!, mode);
      } else if (node.kind === 'concat') {
        value = ops.concat(ins, 1);
      } else {
        value = ins.slice(1).reduce((acc, more, i) => {
          const next = node.kind === 'sum' ? ops.add(acc, more) : ops.mul(acc, more);
          if (i > 0) acc.dispose();
          return next;
        }, ins[0]!);
      }
      values.set(node.name, value);
      release(k);
    }
    const out: Record<string, Tensor> = {};
    for (const name of wanted) {
      const v = values.get(name)!;
      out[name] = inputs.has(name) ? v.reshape(v.shape) : v;
    }
    // Nodes nobody reads and nobody asked for.
    for (const [name, v] of values) if (!inputs.has(name) && !keep.has(name) && !this.lastUse.has(name)) v.dispose();
    return out;
  }
}

export function graph(options: GraphOptions): Graph {
  return new Graph(options);
}
