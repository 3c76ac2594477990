// What a fused forward pass (the C-LSTM scan, the PyraMiD-LSTM layer, the dense RNN
// op) keeps natively for its backward pass, behind an opaque handle.
import { describe, SegvolError } from '../core/errors';
import { native, type NativeSavedHandle } from '../core/native';

const savedHandles = new WeakMap<SavedState, NativeSavedHandle>();

/** Activations a forward pass keeps for its backward pass (gates, cells, inputs). */
export class SavedState {
  private constructor(handle: NativeSavedHandle) {
    savedHandles.set(this, handle);
  }

  /** @internal */
  static fromHandle(handle: NativeSavedHandle): SavedState {
    return new SavedState(handle);
  }

  /** Host or device bytes the saved activations hold (0 once disposed). */
  get bytes(): number {
    return native.savedBytes(savedHandles.get(this)!);
  }

  /** Frees the saved activations now; a later backward pass with this state throws ERR_DISPOSED. */
  dispose(): void {
    native.savedDispose(savedHandles.get(this)!);
  }

  /** @internal A second owner of the same activations (the tape's), freed independently. */
  share(): SavedState {
    return new SavedState(native.savedShare(savedHandles.get(this)!));
  }
}

/** @internal */
export function savedHandleOf(saved: SavedState, op: string): NativeSavedHandle {
  const handle = saved instanceof SavedState ? savedHandles.get(saved) : undefined;
  if (!handle) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected the saved state of a forward pass, received ${describe(saved)}`);
  }
  return handle;
}

