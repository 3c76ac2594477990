// Reverse-mode automatic differentiation over segvol's ops, define-by-run.
//
// While a GradientTape records (tape.record(fn)), every differentiable op whose
// inputs include a tracked tensor (a parameter with requiresGrad, a watched
// tensor, or the output of an op on this tape) appends a node: its inputs and
// outputs (by identity), views of what its backward needs, and its gradient
// function, which calls the op's native backward. backward() walks the nodes in
// reverse, sums the gradients of tensors used more than once, and frees each
// node's saved state as soon as its gradient is done. Fused ops (the PyraMiD-LSTM
// layer, the C-LSTM scan) are one node each, with their fused backward.
//
// The active tape travels with the async context (AsyncLocalStorage), so awaits
// inside a forward function keep recording, and concurrent work outside it does not.
import { AsyncLocalStorage } from 'node:async_hooks';
import { SegvolError } from '../core/errors';
import type { ImplementationName } from '../core/native';
import { setTensorOpRecorder, Tensor, viewOf } from '../core/tensor';

/**
 * The gradients of a node's inputs, given those of its outputs (null where an
 * output was not reached). needs[i] says whether input i wants one; return
 * null or undefined for the others.
 */
export type GradientFunction = (dys: ReadonlyArray<Tensor | null>, saved: readonly Tensor[], needs: readonly boolean[]) =>
  ReadonlyArray<Tensor | null | undefined> | Promise<ReadonlyArray<Tensor | null | undefined>>;

export interface Disposable {
  dispose(): void;
}

/** What a differentiable op hands to the tape. */
export interface OpRecord {
  op: string;
  /** Inputs in the order the gradient function returns their gradients; null for absent optional ones. */
  inputs: ReadonlyArray<Tensor | null | undefined>;
  outputs: readonly Tensor[];
  /** Tensors the gradient function needs; the tape keeps views, so callers may dispose the originals. */
  save?: readonly Tensor[];
  /** Other state the gradient function needs (a fused layer's saved planes), disposed with the node. */
  keep?: readonly Disposable[];
  backward: GradientFunction;
}

interface Node {
  op: string;
  scope: string;
  inputs: Array<Tensor | null>;
  needs: boolean[];
  outputs: readonly Tensor[];
  saved: Tensor[];
  keep: Disposable[];
  backward: GradientFunction;
  done: boolean;
}

interface Context {
  tape: GradientTape | undefined;
  /** Where in the model the current op runs ("layers.3", "nodes.encoder"), for error messages. */
  scope: string;
}

const context = new AsyncLocalStorage<Context>();
const declared = new Set<string>();

/**
 * The ops the tape itself needs: summing the gradients of a tensor used twice, and
 * finding a non-finite op output. lib/ops installs them (autograd sits below ops, and
 * only ops call the addon for computation).
 */
export interface TapeKernels {
  add(impl: ImplementationName, a: Tensor, b: Tensor): Tensor;
  firstNonFinite(tensors: readonly Tensor[]): number;
}
let kernels: TapeKernels | undefined;

/** @internal Called once by lib/ops when it loads. */
export function setTapeKernels(k: TapeKernels): void {
  kernels = k;
}

function tapeKernels(): TapeKernels {
  if (!kernels) throw new SegvolError('ERR_NATIVE', 'GradientTape: the ops are not loaded (import segvol, not its autograd module alone)');
  return kernels;
}

/** Declares op names as differentiable (defineOp does); tests check that each has a gradient check. */
export function declareDifferentiable(...ops: string[]): void {
  for (const op of ops) declared.add(op);
}

/** Every op name declared differentiable. */
export function differentiableOps(): string[] {
  return [...declared].sort();
}

export interface TapeOptions {
  /**
   * The implementation whose ops sum gradients on this tape (default 'optimized';
   * 'reference' for a tape over the reference ops of segvol/testing).
   */
  implementation?: ImplementationName;
  /**
   * Keep a view of every op output until findNonFinite() has looked at them all
   * in one pass (the trainer's numerical safety). Off by default: the views hold memory.
   */
  checkFinite?: boolean;
}

/** Where a non-finite value first appeared. */
export interface NonFiniteReport {
  op: string;
  scope: string;
  /** The op's position on the tape (0-based) and the output holding the value. */
  node: number;
  output: number;
}

export interface BackwardOptions {
  /**
   * Called during backward with each requiresGrad (or watched) leaf and its gradient as
   * soon as that gradient is final, before backward ends (data-parallel training starts
   * averaging it then). The gradient is the one backward returns: read it, keep no reference
   * past the step, and do not dispose it.
   */
  onLeafGradient?: (leaf: Tensor, gradient: Tensor) => void;
}

export class GradientTape {
  private nodes: Node[] = [];
  private readonly producers = new Map<Tensor, number>();
  private readonly watched = new Set<Tensor>();
  /** Each gradient-receiving leaf's first op (its gradient is final once that op's backward has run). */
  private readonly firstUse = new Map<Tensor, number>();
  private checks: Array<{ view: Tensor; node: number; output: number }> = [];
  private disposed = false;

  constructor(private readonly options: TapeOptions = {}) {}

  /** Runs fn with this tape recording (ops inside, and in everything fn awaits, are taped). */
  async record<T>(fn: () => T | Promise<T>): Promise<T> {
    this.checkAlive('record');
    const scope = context.getStore()?.scope ?? '';
    return context.run({ tape: this, scope }, async () => fn());
  }

  /** Tracks tensors that do not require a gradient (a model input), so backward returns theirs too. */
  watch(...tensors: Tensor[]): void {
    this.checkAlive('watch');
    for (const t of tensors) {
      if (!(t instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', 'tape.watch: expected Tensors');
      this.watched.add(t);
    }
  }

  /** Whether gradients flow to or through t on this tape. */
  tracks(t: Tensor): boolean {
    return t.requiresGrad || this.watched.has(t) || this.producers.has(t);
  }

  /** Ops recorded so far. */
  get size(): number {
    return this.nodes.length;
  }

  /** The ops recorded so far, in order (for tests and profiling). */
  get ops(): string[] {
    return this.nodes.map((n) => n.op);
  }

  /** @internal Called by recordOp. */
  add(r: OpRecord, scope: string): void {
    const inputs = r.inputs.map((t) => t ?? null);
    const needs = inputs.map((t) => t !== null && this.tracks(t));
    const index = this.nodes.length;
    inputs.forEach((t, i) => {
      if (t !== null && needs[i] && !this.producers.has(t) && !this.firstUse.has(t)) this.firstUse.set(t, index);
    });
    this.nodes.push({
      op: r.op, scope, inputs, needs, outputs: r.outputs, saved: (r.save ?? []).map((t) => viewOf(t)),
      keep: [...(r.keep ?? [])], backward: r.backward, done: false,
    });
    r.outputs.forEach((t, output) => {
      this.producers.set(t, index);
      if (this.options.checkFinite) this.checks.push({ view: viewOf(t), node: index, output });
    });
  }

  /**
   * With checkFinite: the first op output (in recording order) holding a NaN or
   * Inf, found in one pass over all of them (one device read-back); null if none.
   * Releases the views it looked at.
   */
  findNonFinite(): NonFiniteReport | null {
    if (this.checks.length === 0) return null;
    const checks = this.checks;
    this.checks = [];
    try {
      const i = tapeKernels().firstNonFinite(checks.map((c) => c.view));
      if (i < 0) return null;
      const node = this.nodes[checks[i]!.node]!;
      return { op: node.op, scope: node.scope, node: checks[i]!.node, output: checks[i]!.output };
    } finally {
      for (const c of checks) c.view.dispose();
    }
  }

  /**
   * Gradients of the watched tensors and of every requiresGrad tensor that the
   * outputs depend on, for seeds (the gradients of the outputs; default 1 for a
   * one-element output such as a loss). Frees each node's saved state once its
   * gradient is done, so a tape runs backward once.
   */
  async backward(outputs: Tensor | readonly Tensor[], seeds?: Tensor | ReadonlyArray<Tensor | undefined>,
    options: BackwardOptions = {}): Promise<Map<Tensor, Tensor>> {
    this.checkAlive('backward');
    const outs = outputs instanceof Tensor ? [outputs] : [...outputs];
    const given = seeds === undefined ? [] : seeds instanceof Tensor ? [seeds] : [...seeds];
    if (this.nodes.some((n) => n.done)) {
      throw new SegvolError('ERR_ARGUMENT', 'tape.backward: this tape already ran backward and freed what it saved; ' +
        'record the forward pass again on a new tape');
    }
    const grads = new Map<Tensor, Tensor>();
    const accumulate = (t: Tensor, g: Tensor) => {
      if (g.shape.join() !== t.shape.join()) {
        g.dispose();
        throw new SegvolError('ERR_NATIVE', `tape.backward: a gradient of shape (${g.shape.join(', ')}) arrived for a tensor of ` +
          `shape (${t.shape.join(', ')}); this is a bug in segvol, please report it`);
      }
      const prior = grads.get(t);
      if (!prior) {
        grads.set(t, g);
        return;
      }
      grads.set(t, tapeKernels().add(this.options.implementation ?? 'optimized', prior, g));
      prior.dispose();
      g.dispose();
    };
    outs.forEach((out, i) => {
      if (!(out instanceof Tensor) || !this.tracks(out)) {
        throw new SegvolError('ERR_ARGUMENT', `tape.backward: output ${i} does not depend on any tensor that needs a gradient ` +
          '(parameters, or tensors given to tape.watch); compute it inside tape.record()');
      }
      const seed = given[i];
      if (seed === undefined && out.size !== 1) {
        throw new SegvolError('ERR_ARGUMENT', `tape.backward: output ${i} has shape (${out.shape.join(', ')}); give its gradient ` +
          '(a tensor of that shape) as the seed, or reduce it to one value first');
      }
      if (seed !== undefined && seed.shape.join() !== out.shape.join()) {
        throw new SegvolError('ERR_SHAPE', `tape.backward: the seed of output ${i} has shape (${seed.shape.join(', ')}), ` +
          `the output (${out.shape.join(', ')})`);
      }
      accumulate(out, seed === undefined ? Tensor.full(out.shape, 1, { device: out.device }) : viewOf(seed));
    });
    return context.run({ tape: undefined, scope: '' }, async () => {
      try {
        for (let k = this.nodes.length - 1; k >= 0; --k) {
          const node = this.nodes[k]!;
          const dys = node.outputs.map((o) => grads.get(o) ?? null);
          if (dys.some((d) => d !== null)) {
            for (const o of node.outputs) grads.delete(o);
            let dxs: ReadonlyArray<Tensor | null | undefined>;
            try {
              dxs = await node.backward(dys, node.saved, node.needs);
            } finally {
              for (const d of dys) d?.dispose();
            }
            node.inputs.forEach((input, i) => {
              const g = dxs[i];
              if (!g) return;
              if (input === null || !node.needs[i]) g.dispose();
              else accumulate(input, g);
            });
          }
          if (options.onLeafGradient) {
            // Leaves first used here get no more gradient: theirs is final (read it, do not dispose it).
            for (const input of new Set(node.inputs)) {
              if (input !== null && this.firstUse.get(input) === k && grads.has(input) && (input.requiresGrad || this.watched.has(input))) {
                options.onLeafGradient(input, grads.get(input)!);
              }
            }
          }
          this.release(node);
        }
      } catch (error) {
        for (const g of grads.values()) g.dispose();
        throw error;
      }
      const result = new Map<Tensor, Tensor>();
      for (const [t, g] of grads) {
        if (t.requiresGrad || this.watched.has(t)) result.set(t, g);
        else g.dispose();
      }
      return result;
    });
  }

  /** Frees everything the tape holds. Idempotent. */
  dispose(): void {
    for (const node of this.nodes) this.release(node);
    for (const c of this.checks) c.view.dispose();
    this.checks = [];
    this.nodes = [];
    this.producers.clear();
    this.watched.clear();
    this.disposed = true;
  }

  private release(node: Node): void {
    if (node.done) return;
    node.done = true;
    for (const t of node.saved) t.dispose();
    for (const k of node.keep) k.dispose();
    node.saved = [];
    node.keep = [];
  }

  private checkAlive(what: string): void {
    if (this.disposed) throw new SegvolError('ERR_DISPOSED', `tape.${what}: the tape was disposed; create a new GradientTape`);
  }
}

/** Whether an op on these inputs would be recorded now (fused ops decide from it whether to keep their planes). */
export function willRecord(inputs: ReadonlyArray<Tensor | null | undefined>): boolean {
  const tape = context.getStore()?.tape;
  return tape !== undefined && inputs.some((t) => t instanceof Tensor && tape.tracks(t));
}

/**
 * Appends an op to the active tape if one records and an input is tracked;
 * otherwise disposes r.keep. Returns whether it was recorded.
 */
export function recordOp(r: OpRecord): boolean {
  const store = context.getStore();
  if (store?.tape && r.inputs.some((t) => t instanceof Tensor && store.tape!.tracks(t))) {
    store.tape.add(r, store.scope);
    return true;
  }
  for (const k of r.keep ?? []) k.dispose();
  return false;
}

/** What defineOp hands an op's body: its name, and the recorder that tapes a call under that name. */
export interface OpDefinition {
  readonly name: string;
  /** Appends the call to the active tape (see recordOp); returns whether it did. */
  record(r: Omit<OpRecord, 'op'>): boolean;
  /** Whether a call on these inputs would be taped now (fused ops decide from it whether to keep their planes). */
  willRecord(inputs: ReadonlyArray<Tensor | null | undefined>): boolean;
}

/**
 * Defines a differentiable op: names it once, declares it differentiable (the gradient
 * checks of test/autograd.test.ts look for it) and hands the body a recorder bound to
 * that name. The body computes the outputs and records their gradient function.
 *
 *   const double = defineOp('double', (op, x: Tensor) => {
 *     const y = ops.scale(x, 2);  // any computation
 *     op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [ops.scale(dy!, 2)] });
 *     return y;
 *   });
 */
export function defineOp<A extends unknown[], R>(name: string, body: (op: OpDefinition, ...args: A) => R): (...args: A) => R {
  declared.add(name);
  const definition: OpDefinition = { name, record: (r) => recordOp({ ...r, op: name }), willRecord };
  return (...args: A) => body(definition, ...args);
}

/** Runs fn with ops named as happening inside `name` (nested scopes join with '.'), for error messages. */
export function scope<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const store = context.getStore();
  if (!store?.tape) return fn();
  return context.run({ tape: store.tape, scope: store.scope ? `${store.scope}.${name}` : name }, fn);
}

/** Runs fn with no tape recording (inference inside a training loop, for example). */
export function noGrad<T>(fn: () => T | Promise<T>): Promise<T> {
  return context.run({ tape: undefined, scope: '' }, async () => fn());
}

/** Whether a tape is recording in the current async context. */
export function isRecording(): boolean {
  return context.getStore()?.tape !== undefined;
}

// Tensor's own differentiable methods: reshape and to.
const tensorOps = new Map(['reshape', 'to'].map((name) => [name, defineOp(name, (op, input: Tensor, output: Tensor, backward: (dy: Tensor) => Tensor) =>
  op.record({ inputs: [input], outputs: [output], backward: ([dy]) => [backward(dy!)] }))]));
setTensorOpRecorder({
  record(name, input, output, backward) {
    tensorOps.get(name)!(input, output, backward);
  },
});
