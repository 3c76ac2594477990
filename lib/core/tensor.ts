import { describe, SegvolError } from './errors';
import { native, type DeviceName, type NativeTensorHandle } from './native';
import { keep as keepInScope, tidyWith, trackTensor } from './scope';

export type Device = DeviceName;

export interface TensorOptions {
  /** Where the memory lives; 'cpu' by default. */
  device?: Device;
}

const handles = new WeakMap<Tensor, NativeTensorHandle>();

/**
 * @internal How Tensor's own differentiable methods (reshape, to) reach the
 * gradient tape without this module depending on the autograd module, which
 * depends on it. lib/autograd installs it when loaded.
 */
export interface TensorOpRecorder {
  record(op: string, input: Tensor, output: Tensor, backward: (dy: Tensor) => Tensor): void;
}
let recorder: TensorOpRecorder | undefined;

/** @internal */
export function setTensorOpRecorder(r: TensorOpRecorder): void {
  recorder = r;
}

/**
 * float32 memory on a device, contiguous in NC(D)HW order, rank 1 to 5.
 * Call dispose() when done: the garbage collector frees forgotten tensors too,
 * but only when it runs, and it cannot see device memory.
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly device: Device;
  /**
   * A leaf whose gradient a GradientTape computes (model parameters set it).
   * Ops on it are recorded only while a tape records.
   */
  requiresGrad = false;

  private constructor(handle: NativeTensorHandle) {
    handles.set(this, handle);
    this.shape = Object.freeze(native.tensorShape(handle));
    this.device = native.tensorDevice(handle);
    trackTensor(this);
  }

  /** Copies data into a new tensor of the given shape. */
  static fromArray(data: Float32Array | ArrayLike<number>, shape: readonly number[], options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.fromArray');
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const expected = shape.reduce((a, b) => a * b, 1);
    if (values.length !== expected) {
      throw new SegvolError('ERR_SHAPE', `Tensor.fromArray: shape (${shape.join(', ')}) holds ${expected} values, ` +
        `but the data has ${values.length}; pass data of exactly that length`);
    }
    return new Tensor(native.tensorFromArray(values, [...shape], checkDevice(options.device ?? 'cpu', 'Tensor.fromArray')));
  }

  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 0, options);
  }

  static full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.full');
    if (typeof value !== 'number') throw new SegvolError('ERR_ARGUMENT', `Tensor.full: expected a number value, received ${describe(value)}`);
    return new Tensor(native.tensorFull([...shape], value, checkDevice(options.device ?? 'cpu', 'Tensor.full')));
  }

  /** @internal Wraps a handle the binding returned. */
  static fromHandle(handle: NativeTensorHandle): Tensor {
    return new Tensor(handle);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return native.tensorIsDisposed(handles.get(this)!);
  }

  /**
   * A copy of the values, in row-major order. With `into` (exactly `size` values), the
   * values are written there and it is returned: loops reading many tensors reuse one
   * array instead of allocating one each time (large new arrays make V8 collect garbage).
   */
  toArray(into?: Float32Array): Float32Array {
    const handle = handleOf(this, 'Tensor.toArray', 'the tensor');
    return into === undefined ? native.tensorToArray(handle) : native.tensorToArray(handle, into);
  }

  /** A copy on another device (or the same); differentiable. */
  to(device: Device): Tensor {
    const y = new Tensor(native.tensorTo(handleOf(this, 'Tensor.to', 'the tensor'), checkDevice(device, 'Tensor.to')));
    const from = this.device;
    recorder?.record('to', this, y, (dy) => dy.to(from));
    return y;
  }

  /** A view with another shape of the same element count, sharing memory. */
  reshape(shape: readonly number[]): Tensor {
    checkShape(shape, 'Tensor.reshape');
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== this.size) {
      throw new SegvolError('ERR_SHAPE', `Tensor.reshape: expected a shape with ${this.size} elements like ` +
        `(${this.shape.join(', ')}), received (${shape.join(', ')}) with ${count}`);
    }
    const y = new Tensor(native.tensorReshape(handleOf(this, 'Tensor.reshape', 'the tensor'), [...shape]));
    const from = this.shape;
    recorder?.record('reshape', this, y, (dy) => viewOf(dy, from));
    return y;
  }

  /** Frees the memory now (views keep theirs alive). Idempotent. */
  dispose(): void {
    native.tensorDispose(handles.get(this)!);
  }

  toString(): string {
    return `Tensor(${this.shape.join('x')}, ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** @internal A view sharing t's memory (never recorded): it keeps the memory alive after t is disposed. */
export function viewOf(t: Tensor, shape: readonly number[] = t.shape): Tensor {
  return Tensor.fromHandle(native.tensorReshape(handleOf(t, 'view', 'the tensor'), [...shape]));
}

/** @internal The handle of a live tensor, for lib/ops.ts; throws ERR_DISPOSED / ERR_ARGUMENT. */
export function handleOf(t: Tensor, op: string, name: string): NativeTensorHandle {
  const handle = t instanceof Tensor ? handles.get(t) : undefined;
  if (!handle) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${name} to be a Tensor, received ${describe(t)}`);
  }
  if (native.tensorIsDisposed(handle)) {
    throw new SegvolError('ERR_DISPOSED', `${op}: ${name} was disposed; keep tensors alive until their last use, ` +
      'or create a new one');
  }
  return handle;
}

function checkShape(shape: readonly number[], op: string): void {
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 5) {
    throw new SegvolError('ERR_SHAPE', `${op}: expected a shape of rank 1 to 5, received ${describe(shape)}`);
  }
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) {
      throw new SegvolError('ERR_SHAPE', `${op}: expected non-negative integer sizes, received ` +
        `(${shape.join(', ')})`);
    }
  }
}

function checkDevice(device: unknown, op: string): Device {
  if (device !== 'cpu' && device !== 'cuda') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected device 'cpu' or 'cuda', received ${describe(device)}`);
  }
  return device;
}

/**
 * Runs fn (a training step, a prediction) and disposes every tensor created while it ran,
 * except what it returns (a tensor, or tensors in arrays, Maps or objects), parameters
 * (requiresGrad) and tensors given to keep(). Without it, intermediates of a forward function
 * are freed only when the garbage collector runs:
 *
 *   for (let step = 0; step < 1000; ++step) {
 *     const loss = await tidy(async () => trainStep(model, optimizer, lossOfBatch, { lr }));
 *   }
 */
export function tidy<T>(fn: () => T | Promise<T>): Promise<T> {
  return tidyWith(fn, (v): v is Tensor => v instanceof Tensor);
}

/** Keeps a tensor created inside tidy() alive after it (a cache, an optimizer's state). */
export function keep(t: Tensor): Tensor {
  return keepInScope(t);
}
