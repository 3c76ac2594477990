// Optimizers whose updates run natively, in place, on the parameters' device.
import { describe, SegvolError } from '../core/errors';
import type { ImplementationName } from '../core/native';
import { keep, Tensor } from '../core/tensor';
import { rejectUnknown } from '../core/validate';
import { createOps, ops, type Ops, type UpdateHyperparameters } from '../ops';

export type OptimizerKind = 'rmspropMomentum' | 'sgd' | 'adam';

/**
 * rmspropMomentum: the PyraMiD-LSTM paper's eqs. 14-18: MS <- rho MS + (1 - rho) g^2,
 * G = g / (sqrt(MS) + eps), M <- rhoM M + (1 - rhoM) G, theta -= lr M (defaults eps 1e-5, rho 0.9, rhoM 0.9).
 * sgd: v <- momentum v + g, theta -= lr v (PyTorch's convention). adam: Kingma & Ba with bias correction.
 */
export interface OptimizerConfig {
  kind: OptimizerKind;
  /** A constant learning rate, used where no schedule is given (as PyTorch's lr). */
  lr?: number;
  rho?: number;
  rhoM?: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

const known = new Set(['kind', 'lr', 'rho', 'rhoM', 'momentum', 'beta1', 'beta2', 'eps', 'weightDecay']);

export type CheckedOptimizerConfig = Required<Omit<OptimizerConfig, 'lr'>> & { lr?: number };

export function checkOptimizerConfig(config: OptimizerConfig): CheckedOptimizerConfig {
  if (config === null || typeof config !== 'object') {
    throw new SegvolError('ERR_ARGUMENT', `optimizer: expected a config object, received ${describe(config)}`);
  }
  rejectUnknown(config, known, 'optimizer');
  if (!['rmspropMomentum', 'sgd', 'adam'].includes(config.kind)) {
    throw new SegvolError('ERR_ARGUMENT', `optimizer: expected kind 'rmspropMomentum', 'sgd' or 'adam', received ${describe(config.kind)}`);
  }
  if (config.lr !== undefined && !(config.lr >= 0 && Number.isFinite(config.lr))) {
    throw new SegvolError('ERR_ARGUMENT', `optimizer: expected lr >= 0, received ${describe(config.lr)}`);
  }
  return {
    kind: config.kind,
    ...(config.lr !== undefined ? { lr: config.lr } : {}),
    rho: config.rho ?? 0.9,
    rhoM: config.rhoM ?? 0.9,
    momentum: config.momentum ?? 0.9,
    beta1: config.beta1 ?? 0.9,
    beta2: config.beta2 ?? 0.999,
    eps: config.eps ?? (config.kind === 'adam' ? 1e-8 : 1e-5),
    weightDecay: config.weightDecay ?? 0,
  };
}

/** Whether two configs update alike (the learning rate aside): a phase with the same one keeps the optimizer's state. */
export function sameUpdateRule(a: OptimizerConfig, b: OptimizerConfig): boolean {
  const strip = (c: OptimizerConfig) => {
    const { lr: _lr, ...rest } = checkOptimizerConfig(c);
    return JSON.stringify(Object.entries(rest).sort());
  };
  return strip(a) === strip(b);
}

export class Optimizer {
  readonly config: CheckedOptimizerConfig;
  /** Updates done so far (Adam's bias correction uses it). */
  steps = 0;
  private readonly states = new Map<string, [Tensor, Tensor]>();
  private readonly ops: Ops;

  constructor(config: OptimizerConfig, impl: ImplementationName = 'optimized') {
    this.config = checkOptimizerConfig(config);
    this.ops = impl === 'optimized' ? ops : createOps(impl);
  }

  /**
   * One update of every parameter that has a gradient, at learning rate lr (default: the
   * configured lr). Parameters without one (frozen, or not used by the loss) keep their
   * value and state.
   */
  step(params: ReadonlyMap<string, Tensor>, grads: ReadonlyMap<string, Tensor>, lr: number | undefined = this.config.lr): void {
    if (lr === undefined) {
      throw new SegvolError('ERR_ARGUMENT', 'optimizer: no learning rate: pass it to step(params, grads, lr), or configure one ({ kind, lr })');
    }
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new SegvolError('ERR_ARGUMENT', `optimizer: expected a learning rate >= 0, received ${lr}`);
    for (const name of grads.keys()) {
      if (!params.has(name)) throw new SegvolError('ERR_ARGUMENT', `optimizer: a gradient for ${name}, which is not a parameter`);
    }
    this.steps += 1;
    const { lr: _lr, ...rule } = this.config;
    const hyper: UpdateHyperparameters = { ...rule, lr, step: this.steps };
    for (const [name, param] of params) {
      const grad = grads.get(name);
      if (!grad) continue;
      let state = this.states.get(name);
      if (state && state[0].device !== param.device) {
        // Restored from a checkpoint on the cpu, or the model moved since.
        const moved: [Tensor, Tensor] = [keep(state[0].to(param.device)), keep(state[1].to(param.device))];
        state[0].dispose();
        state[1].dispose();
        state = moved;
        this.states.set(name, state);
      }
      if (!state) {
        // The state outlives a tidy() scope the step runs in.
        state = [keep(Tensor.zeros(param.shape, { device: param.device })), keep(Tensor.zeros(param.shape, { device: param.device }))];
        this.states.set(name, state);
      }
      this.ops.optimizerUpdate(this.config.kind, hyper, param, grad, state[0], state[1], name);
    }
  }

  /** State tensors by name ("<param>.s1", "<param>.s2"), for checkpoints. */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, [a, b]] of this.states) out.set(`${name}.s1`, a).set(`${name}.s2`, b);
    return out;
  }

  /** Restores state saved by stateTensors(). */
  loadState(tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, steps: number): void {
    this.dispose();
    const names = new Set([...tensors.keys()].map((k) => k.replace(/\.s[12]$/, '')));
    for (const name of names) {
      const a = tensors.get(`${name}.s1`);
      const b = tensors.get(`${name}.s2`);
      if (!a || !b) throw new SegvolError('ERR_FORMAT', `optimizer state: ${name} lacks s1 or s2`);
      this.states.set(name, [keep(Tensor.fromArray(a.data, a.shape)), keep(Tensor.fromArray(b.data, b.shape))]);
    }
    this.steps = steps;
  }

  dispose(): void {
    for (const [a, b] of this.states.values()) {
      a.dispose();
      b.dispose();
    }
    this.states.clear();
  }
}
