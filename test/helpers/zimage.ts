import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { startApp, type App } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';

export const execFileP = promisify(execFile);
const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The repository root, whether this file runs from test/ (tsx) or from dist/test/ (compiled benchmarks). */
export const ROOT = basename(here) === 'dist' ? dirname(here) : here;
export const ADMIN_WIRE_PASSWORD = createHash('sha512').update('password').digest('hex');

export interface HttpAnswer {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

/** A client that speaks to zimage the way ZStack's SDKs do (OAuth header, action keys, job polling). */
export class ZClient {
  session?: string;
  constructor(readonly url: string) {}

  async raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    const h: Record<string, string> = { ...headers };
    if (this.session && !('Authorization' in h)) h.Authorization = `OAuth ${this.session}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['Content-Type'] ??= 'application/json;charset=UTF-8';
    }
    const res = await fetch(`${this.url}/zstack/v1${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text, headers: res.headers };
  }

  /** Calls an API and, like the SDKs, follows a 202 location until a terminal answer. */
  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 120_000): Promise<HttpAnswer> {
    const first = await this.raw(method, path, body, headers);
    if (first.status !== 202 || !first.body?.location) return first;
    return this.poll(first.body.location, timeoutMs);
  }

  async poll(location: string, timeoutMs = 120_000): Promise<HttpAnswer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await fetch(location);
      const text = await res.text();
      if (res.status !== 202) return { status: res.status, body: text ? JSON.parse(text) : undefined, text, headers: res.headers };
      if (Date.now() > deadline) throw new Error(`job ${location} still running after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async login(accountName = 'admin', password = ADMIN_WIRE_PASSWORD): Promise<string> {
    const res = await this.raw('PUT', '/accounts/login', { logInByAccount: { accountName, password } });
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`);
    this.session = res.body.inventory.uuid as string;
    return this.session;
  }

  async addLocalStorage(dir: string, name = 'bs'): Promise<any> {
    const res = await this.call('POST', '/backup-storage/local', { params: { name, url: dir } });
    if (res.status !== 200) throw new Error(`add storage failed: ${res.status} ${res.text}`);
    return res.body.inventory;
  }
}

export interface TestServer {
  url: string;
  client: ZClient;
  dataDir: string;
  app?: App;
  stop(): Promise<void>;
}

export async function tempDir(prefix = 'zimage-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** zimage in this process (real HTTP on 127.0.0.1, real SQLite unless `db` says otherwise). */
export async function startInProcess(overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? (await tempDir('zimage-data-'));
  const config = { ...loadConfig({ dataDir, port: 0, host: '127.0.0.1', ...stripPolicy(overrides) }, { ...env }), ...overrides };
  const app = await startApp(config, pino({ level: process.env.ZIMAGE_TEST_LOG ?? 'silent' }));
  const client = new ZClient(app.url);
  return {
    url: app.url,
    client,
    dataDir,
    app,
    async stop() {
      await app.stop();
      if (!overrides.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

const stripPolicy = (o: Partial<Config>) => {
  const { importPolicy: _ignored, ...rest } = o;
  return rest;
};

/** zimage as its own process, started exactly as a user would (`zimage serve`), on a free port. */
export async function startProcess(
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  opts: { dataDir?: string; keepDataDir?: boolean; detached?: boolean } = {},
): Promise<TestServer & { proc: ChildProcess; output: () => string }> {
  const dataDir = opts.dataDir ?? (await tempDir('zimage-data-'));
  const proc = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), 'serve', '--port', '0', '--data-dir', dataDir, ...args], {
    env: { ...process.env, ZIMAGE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: SIGKILL to the group takes its children (rbd, ssh) too, as a machine death would.
    detached: opts.detached ?? false,
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`zimage did not start:\n${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"[^\n]*zimage is serving/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`zimage exited with ${code}:\n${output}`));
    });
  });
  return {
    url,
    client: new ZClient(url),
    dataDir,
    proc,
    output: () => output,
    async stop() {
      // A process killed by a signal has exitCode null too: it has exited all the same.
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      if (!opts.keepDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** `qemu-img info --output=json -f <fmt>` (the reference for sizes). */
export async function qemuInfo(file: string, format?: string): Promise<{ 'virtual-size': number; 'actual-size': number; format: string }> {
  const args = ['info', '--output=json', ...(format ? ['-f', format] : []), file];
  const { stdout } = await execFileP('qemu-img', args);
  return JSON.parse(stdout);
}

/** `openssl dgst -<alg>` (the reference for digests). */
export async function opensslDigest(file: string, alg: string): Promise<string> {
  const { stdout } = await execFileP('openssl', ['dgst', `-${alg.toLowerCase()}`, '-r', file]);
  return stdout.trim().split(/\s+/)[0]!.replace(/^\*/, '');
}

/** Polls `cond` every 50 ms until it holds; throws naming `what` after `ms`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
