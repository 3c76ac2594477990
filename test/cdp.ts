// A small Chrome DevTools Protocol client for the viewer's browser tests: Chromium started
// headless with --remote-debugging-pipe (requests on fd 3, replies on fd 4, each message
// NUL-terminated), so no port, no WebSocket library and no puppeteer (which needs Node 22).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export const chromiumBinary = process.env.SEGVOL_CHROMIUM ?? 'chromium';

/** Why the browser tests cannot run here, or undefined when Chromium starts. */
export function chromiumMissing(): string | undefined {
  const r = spawnSync(chromiumBinary, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${chromiumBinary} is not installed (apt-get install chromium, or set SEGVOL_CHROMIUM)`;
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export class Browser {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: Record<string, unknown>): void; reject(e: Error): void; method: string }>();
  private readonly listeners: Array<(m: Message) => void> = [];
  private buffer = '';
  private stderr = '';
  private readonly profile: string;
  private readonly child: ChildProcess;

  constructor() {
    this.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-chromium-'));
    // --no-sandbox: CI runs as root in a container without user namespaces; the page is our own.
    this.child = spawn(chromiumBinary, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--remote-debugging-pipe', `--user-data-dir=${this.profile}`,
      '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--disable-background-networking', '--disable-breakpad',
      '--force-device-scale-factor=1', '--force-color-profile=srgb', '--hide-scrollbars', '--window-size=1280,900', 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });  // its own process group: close() ends its helpers too
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    // One decoder for the stream: a character split between two reads stays whole.
    const decoder = new StringDecoder('utf8');
    (this.child.stdio[4] as Readable).on('data', (d: Buffer) => this.receive(decoder.write(d)));
    this.child.on('exit', () => {
      for (const w of this.waiting.values()) w.reject(new Error(`chromium exited; its stderr ends:\n${this.stderr}`));
      this.waiting.clear();
    });
  }

  private receive(text: string): void {
    this.buffer += text;
    let end: number;
    while ((end = this.buffer.indexOf('\0')) >= 0) {
      const text = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 1);
      let message: Message;
      try {
        message = JSON.parse(text) as Message;
      } catch {
        for (const w of this.waiting.values()) w.reject(new Error(`chromium sent a message that is not JSON: ${text.slice(0, 200)}`));
        this.waiting.clear();
        continue;
      }
      if (message.id !== undefined && this.waiting.has(message.id)) {
        const w = this.waiting.get(message.id)!;
        this.waiting.delete(message.id);
        if (message.error) w.reject(new Error(`${w.method}: ${message.error.message}`));
        else w.resolve(message.result ?? {});
      } else {
        for (const l of this.listeners) l(message);
      }
    }
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, method });
      (this.child.stdio[3] as Writable).write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  on(listener: (m: Message) => void): void {
    this.listeners.push(listener);
  }

  /** A new tab at url, loaded; every request it makes is recorded in `requests`. */
  async open(url: string): Promise<Page> {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' }) as { targetId: string };
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true }) as { sessionId: string };
    const page = new Page(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Network.enable');
    await page.send('Log.enable');
    const loaded = new Promise<void>((resolve) => this.on((m) => { if (m.sessionId === sessionId && m.method === 'Page.loadEventFired') resolve(); }));
    await page.send('Page.navigate', { url });
    await loaded;
    return page;
  }

  async close(): Promise<void> {
    const exited = this.child.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await Promise.race([this.send('Browser.close').catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
    // The whole group: Chromium's zygote and renderers would go on writing the profile.
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
    await exited;
    fs.rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

export class Page {
  readonly requests: string[] = [];
  readonly consoleErrors: string[] = [];

  constructor(private readonly browser: Browser, readonly sessionId: string) {
    browser.on((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Network.requestWillBeSent') this.requests.push(String((m.params!.request as { url: string }).url));
      if (m.method === 'Runtime.exceptionThrown') this.consoleErrors.push(JSON.stringify(m.params!.exceptionDetails));
      if (m.method === 'Runtime.consoleAPICalled' && (m.params!.type === 'error' || m.params!.type === 'warning')) this.consoleErrors.push(JSON.stringify(m.params!.args));
      // CSP violations and failed loads are reported as log entries.
      if (m.method === 'Log.entryAdded' && (m.params!.entry as { level: string }).level === 'error') this.consoleErrors.push(JSON.stringify(m.params!.entry));
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** The value of a JavaScript expression (awaited when it is a Promise). */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }) as { result: { value: T }; exceptionDetails?: { text: string; exception?: { description?: string } } };
    if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** Polls an expression until it is truthy; fails naming `what` (and the last value) after `tries` polls. */
  async until<T>(expression: string, what: string, tries = 300): Promise<T> {
    let last: T | undefined;
    for (let i = 0; i < tries; ++i) {
      last = await this.eval<T>(expression);
      if (last) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`waited for ${what}; ${expression} is still ${JSON.stringify(last)}`);
  }

  async key(key: string, code = key): Promise<void> {
    const text = key.length === 1 ? key : undefined;
    const keyCode = ({ ArrowUp: 38, ArrowDown: 40, PageUp: 33, PageDown: 34 } as Record<string, number>)[key] ?? key.toUpperCase().charCodeAt(0);
    await this.send('Input.dispatchKeyEvent', { type: 'keyDown', key, code, windowsVirtualKeyCode: keyCode, ...(text ? { text } : {}) });
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', key, code, windowsVirtualKeyCode: keyCode });
  }

  async click(x: number, y: number): Promise<void> {
    for (const type of ['mousePressed', 'mouseReleased']) await this.send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1 });
  }

  async screenshot(file: string): Promise<void> {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' }) as { data: string };
    fs.writeFileSync(file, Buffer.from(data, 'base64'));
  }
}
