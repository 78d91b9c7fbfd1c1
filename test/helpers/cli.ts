/** Runs the `zimage` client CLI as a user would (its own process, its own config home) against a real server. */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestHttpServer, type TestHttpServer } from './http-server.js';
import { ROOT, startProcess, tempDir, type TestServer } from './zimage.js';

export const CLI = join(ROOT, 'dist/src/cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A CLI process with pipes (no terminal): output captured, stdin written then closed. */
export function spawnCli(
  args: string[],
  env: Record<string, string>,
  input?: string,
): { proc: ChildProcess; done: Promise<CliResult>; stderr: () => string } {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdin.end(input ?? '');
  const done = new Promise<CliResult>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { proc, done, stderr: () => stderr };
}

export interface CliWorld {
  server: TestServer;
  http: TestHttpServer;
  /** XDG_CONFIG_HOME of the CLI runs (the session file lives below it). */
  config: string;
  work: string;
  env: Record<string, string>;
  run(args: string[], input?: string, env?: Record<string, string>): Promise<CliResult>;
  /** Runs and insists on exit 0; returns stdout. */
  ok(args: string[], input?: string): Promise<string>;
  /** Runs with --json and insists on exit 0; returns the parsed output. */
  json(args: string[]): Promise<any>;
  close(): Promise<void>;
}

/** A real `zimage serve`, a test HTTP server for image sources, and a fresh config home for the CLI. */
export async function startCliWorld(): Promise<CliWorld> {
  const server = await startProcess();
  const http = await startTestHttpServer();
  const config = await tempDir('zimage-cli-config-');
  const work = await tempDir('zimage-cli-work-');
  const env = { XDG_CONFIG_HOME: config, ZIMAGE_URL: '', ZIMAGE_PASSWORD: '' };
  const run = (args: string[], input?: string, extra: Record<string, string> = {}) => spawnCli(args, { ...env, ...extra }, input).done;
  const ok = async (args: string[], input?: string) => {
    const r = await run(args, input);
    if (r.code !== 0) throw new Error(`zimage ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  return {
    server,
    http,
    config,
    work,
    env,
    run,
    ok,
    json: async (args) => JSON.parse(await ok([...args, '--json'])),
    async close() {
      await server.stop();
      await http.close();
      await rm(config, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    },
  };
}
