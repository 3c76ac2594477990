import { native } from './native';

export interface BackendInfo {
  /** 'cpu' or 'cuda'. */
  name: 'cpu' | 'cuda';
  available: boolean;
  /** Why it is unavailable ('' when available), e.g. "not compiled: cuDNN not found at build time". */
  reason: string;
  /** Library versions or device name. */
  detail: string;
}

/** The compute backends of this build and whether each can run here. */
export function backends(): BackendInfo[] {
  return native.backends().map((b) => ({
    name: b.name === 'cuda' ? 'cuda' : 'cpu',
    available: b.available,
    reason: b.reason,
    detail: b.detail,
  }));
}
