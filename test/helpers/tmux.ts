/**
 * A real terminal for CLI tests: a detached tmux session on its own socket (-L), running one command (its
 * arguments passed as sh's positional parameters, never spliced into a shell string). capture-pane reads
 * the screen as a person sees it; send-keys types (C-c, y, Enter).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileP, waitFor } from './zimage.js';

export interface Terminal {
  /** The visible screen, trailing blank lines dropped. */
  screen(): Promise<string>;
  keys(...keys: string[]): Promise<void>;
  /** The command's exit status once it ended, else undefined. */
  exitStatus(): Promise<number | undefined>;
  waitForExit(ms?: number): Promise<number>;
  waitForText(re: RegExp, ms?: number): Promise<string>;
  close(): Promise<void>;
}

export async function openTerminal(argv: string[], env: Record<string, string>, size = { width: 160, height: 40 }): Promise<Terminal> {
  const socket = `zimage-test-${randomBytes(6).toString('hex')}`;
  const tmux = (...args: string[]) => execFileP('tmux', ['-L', socket, '-f', '/dev/null', ...args]);
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  // The shell stays after the command so the screen is kept as it was (tmux's remain-on-exit alters it);
  // the exit status goes to a file.
  const statusFile = join(tmpdir(), `${socket}.status`);
  // Ctrl-C reaches the whole foreground group: the shell ignores it with a no-op trap (reset for the command).
  const keep = 'trap : INT; "$@"; echo $? > "$0"; exec sleep 86400';
  await tmux(
    'new-session',
    '-d',
    '-s',
    't',
    '-x',
    String(size.width),
    '-y',
    String(size.height),
    ...envArgs,
    'sh',
    '-c',
    keep,
    statusFile,
    ...argv,
  );
  const socketPath = (await tmux('display-message', '-p', '-t', 't', '#{socket_path}')).stdout.trim();
  const screen = async () => (await tmux('capture-pane', '-p', '-t', 't')).stdout.replace(/\n+$/, '');
  const exitStatus = async () => {
    const text = await readFile(statusFile, 'utf8').catch(() => '');
    return /^\d+\n/.test(text) ? Number(text) : undefined;
  };
  return {
    screen,
    keys: async (...keys) => void (await tmux('send-keys', '-t', 't', ...keys)),
    exitStatus,
    async waitForExit(ms = 30_000) {
      let status: number | undefined;
      await waitFor('the command in tmux to end', async () => (status = await exitStatus()) !== undefined, ms).catch(async (err) => {
        throw new Error(`${(err as Error).message}; screen:\n${await screen()}`);
      });
      return status!;
    },
    async waitForText(re, ms = 15_000) {
      let text = '';
      await waitFor(`${re} on the terminal`, async () => re.test((text = await screen())), ms).catch((err) => {
        throw new Error(`${(err as Error).message}; screen:\n${text}`);
      });
      return text;
    },
    async close() {
      await tmux('kill-server').catch(() => {});
      await rm(statusFile, { force: true });
      if (socketPath) await rm(socketPath, { force: true });
    },
  };
}
