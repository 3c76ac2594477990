// Reaching Redis. BullMQ's connection options from a redis:// URL, and a watch that tells
// the worker and the coordinator whether Redis answers. ioredis and BullMQ retry a lost
// connection forever and report every try as an error event (a coordinator printed their
// stack dumps and never exited); segvol silences those and says it once:
//   cannot reach Redis at redis://host:6379 (connection refused); retrying for 30 s
// then "reached Redis at ... again" or, after connectTimeout seconds, RedisUnavailableError
// "...: gave up after 30 s". A watch with connectTimeout 0 retries forever, reminding once
// a minute.
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, SegvolError } from '../core/errors';

/** Host, port, credentials and database of a redis://[user:password@]host:port[/db] URL. */
function parseRedisUrl(url: string): { host: string; port: number; username?: string; password?: string; db?: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SegvolError('ERR_ARGUMENT', `queue: expected a redis://host:port URL, received ${describe(url)}`);
  }
  if (u.protocol !== 'redis:') throw new SegvolError('ERR_ARGUMENT', `queue: expected a redis://host:port URL, received ${describe(url)}`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}), ...(db ? { db: Number(db) } : {}),
  };
}

/** The URL as logs may show it: a password replaced by ***. */
export function redactedUrl(url: string): string {
  return url.replace(/^(redis:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/**
 * Reconnection every 0.25 s at first, then every 2 s: Redis back after a restart is found
 * soon. A closing socket that does not answer is destroyed after 0.5 s (ioredis waits 2 s).
 */
const retries = { retryStrategy: (times: number): number => Math.min(250 * times, 2000), disconnectTimeout: 500 };

/** BullMQ's connection options from a redis:// URL. */
export function redisConnection(url: string): ConnectionOptions {
  return { ...parseRedisUrl(url), ...retries, maxRetriesPerRequest: null };
}

/** Errors that only say the connection is down (BullMQ and ioredis repeat them on every retry). */
export function isConnectionError(error: Error & { code?: string }): boolean {
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE'].includes(error.code ?? '') ||
    /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|Stream isn't writeable|Reached the max retries|Command timed out/.test(error.message);
}

/** Why a connection failed, in words: 'connection refused', 'host not found', ... */
export function connectionReason(error: (Error & { code?: string }) | undefined): string {
  switch (error?.code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'host not found';
    case 'ETIMEDOUT': return 'no answer: timed out';
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'host unreachable';
    case 'ECONNRESET': case 'EPIPE': return 'connection reset';
    default: break;
  }
  if (!error) return 'no answer';
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(error.message)) return `authentication failed: ${error.message}`;
  if (/^Protocol error/.test(error.message)) return `not a Redis server: ${error.message.replace(/\s*Please report this\.?$/, '')}`;
  return error.message;
}

/** Redis stayed unreachable for the connect timeout. */
export class RedisUnavailableError extends SegvolError {
  constructor(message: string) {
    super('ERR_UNAVAILABLE', message);
    this.name = 'RedisUnavailableError';
  }
}

/** A wait cut short by an AbortSignal (a signal to the process, say). */
export class QueueStopped extends Error {
  constructor(readonly reason: unknown) {
    super(`stopped${typeof reason === 'string' ? ` (${reason})` : ''}`);
    this.name = 'QueueStopped';
  }
}

/** Waits ms, or less when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** p's value, or undefined when it takes longer than ms (p goes on; its failure is ignored). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  p.catch(() => {});
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export interface RedisWatchOptions {
  /** Seconds an unreachable Redis is retried before giving up (default 30; 0: forever). */
  connectTimeout?: number;
  /** Where the one-line messages go (default: stderr). */
  onNotice?: (line: string) => void;
}

/**
 * Watches one Redis: a connection of its own (pinged every few seconds, so a silent network
 * also counts as down) whose state stands for the BullMQ connections to the same URL.
 */
export class RedisWatch {
  /** The URL watched, as messages show it (no password). */
  readonly url: string;
  readonly connectTimeout: number;
  /** Rejects with RedisUnavailableError when the watch gives up (never resolves). */
  readonly gaveUp: Promise<never>;
  private readonly client: Redis;
  private readonly notice: (line: string) => void;
  private giveUp!: (error: RedisUnavailableError) => void;
  private upNow = false;
  private everUp = false;
  private downSince: number | undefined = Date.now();
  private lastError: (Error & { code?: string }) | undefined;
  private said = false;
  private failed: RedisUnavailableError | undefined;
  private readonly ping: NodeJS.Timeout;
  private deadline: NodeJS.Timeout | undefined;
  private reminder: NodeJS.Timeout | undefined;
  private readyWaiters: Array<() => void> = [];

  constructor(url: string, options: RedisWatchOptions = {}) {
    this.url = redactedUrl(url);
    this.connectTimeout = options.connectTimeout ?? 30;
    if (!(this.connectTimeout >= 0)) throw new SegvolError('ERR_ARGUMENT', `connectTimeout: expected seconds >= 0, received ${describe(options.connectTimeout)}`);
    this.notice = options.onNotice ?? ((line) => console.error(line));
    this.gaveUp = new Promise<never>((_, reject) => (this.giveUp = reject));
    this.gaveUp.catch(() => {});
    // A host that never answers (a firewall dropping packets) fails each try after connectTimeout
    // ms: short enough that the first message comes well before the give-up.
    const tryMs = this.connectTimeout > 0 ? Math.min(10_000, Math.max(1000, this.connectTimeout * 500)) : 10_000;
    this.client = new Redis({ ...parseRedisUrl(url), ...retries, maxRetriesPerRequest: null, commandTimeout: 10_000, connectTimeout: tryMs });
    this.client.on('ready', () => this.markUp());
    this.client.on('error', (error: Error) => this.markDown(error));
    this.client.on('close', () => this.markDown(undefined));
    // The first try's verdict is awaited by the first message; the deadline runs from now.
    this.startDeadline();
    this.ping = setInterval(() => {
      if (this.client.status !== 'ready') return;
      this.client.ping().then(() => this.markUp(), (error: Error) => this.markDown(error));
    }, 3000);
  }

  /** Whether Redis answered last time it was asked. */
  get up(): boolean {
    return this.upNow;
  }

  /** Resolves once Redis answers; rejects when the watch gives up, or with QueueStopped when the signal aborts. */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.upNow) return Promise.resolve();
    return this.guard(new Promise<void>((resolve) => this.readyWaiters.push(resolve)), signal);
  }

  /** p, unless the watch gives up first (RedisUnavailableError) or the signal aborts (QueueStopped). */
  guard<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    if (signal?.aborted) return Promise.reject(new QueueStopped(signal.reason));
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new QueueStopped(signal!.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return Promise.race([p, this.gaveUp, aborted]).finally(() => {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    });
  }

  /** Disconnects the watch's own connection and stops its timers. */
  close(): void {
    clearInterval(this.ping);
    this.clearDeadline();
    this.client.removeAllListeners('close');
    this.client.on('error', () => {});
    this.client.disconnect();
  }

  private markUp(): void {
    if (this.upNow || this.failed) return;
    if (this.said) this.notice(`reached Redis at ${this.url}${this.everUp ? ' again' : ''} after ${Math.round((Date.now() - this.downSince!) / 1000)} s`);
    this.upNow = true;
    this.everUp = true;
    this.lastError = undefined;
    this.downSince = undefined;
    this.said = false;
    this.clearDeadline();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  private markDown(error: (Error & { code?: string }) | undefined): void {
    if (error) this.lastError = error;
    if (this.failed) return;
    if (this.upNow) {
      this.upNow = false;
      this.downSince = Date.now();
      this.startDeadline();
    }
    // One line per outage, once the reason is known (an error event comes with the first try).
    if (!this.said && (error || this.lastError)) {
      this.said = true;
      const retrying = this.connectTimeout > 0 ? `retrying for ${this.connectTimeout} s` : 'retrying until it answers';
      this.notice(`${this.everUp ? 'lost' : 'cannot reach'} Redis at ${this.url} (${connectionReason(this.lastError)}); ${retrying}`);
    }
  }

  private startDeadline(): void {
    this.clearDeadline();
    if (this.connectTimeout > 0) {
      this.deadline = setTimeout(() => this.fail(), this.connectTimeout * 1000);
    }
    // A long outage is said again once a minute, never more often.
    this.reminder = setInterval(() => {
      if (!this.said) return;
      const seconds = Math.round((Date.now() - this.downSince!) / 1000);
      const left = this.connectTimeout > 0 ? `; giving up in ${Math.max(0, Math.round(this.connectTimeout - seconds))} s` : '; retrying';
      this.notice(`still cannot reach Redis at ${this.url} after ${seconds} s (${connectionReason(this.lastError)})${left}`);
    }, 60_000);
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    if (this.reminder) clearInterval(this.reminder);
    this.deadline = this.reminder = undefined;
  }

  private fail(): void {
    this.failed = new RedisUnavailableError(`cannot reach Redis at ${this.url} (${connectionReason(this.lastError)}): gave up after ${this.connectTimeout} s`);
    this.giveUp(this.failed);
    this.close();
  }
}
