import type { Command } from 'commander';
import { action, printJson, type OutputOptions } from '../context.js';
import { ApiClient } from '../http.js';
import { readSecret, wirePassword } from '../prompts.js';
import { loadSession, removeSession, saveSession, sessionPath } from '../session-store.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';

export function registerSessionCommands(program: Command): void {
  program
    .command('login')
    .description('log in to a zimage server and keep the session for the other commands (password prompted, or ZIMAGE_PASSWORD, or stdin)')
    .option('--url <url>', `server base URL [env ZIMAGE_URL] (default: the last one used, else ${DEFAULT_URL})`)
    .option('--user <name>', 'account name', 'admin')
    .option('--json', 'print the session inventory')
    .action(
      action(async (opts: { url?: string; user: string } & OutputOptions) => {
        const previous = await loadSession().catch(() => undefined);
        const url = (opts.url || process.env.ZIMAGE_URL || previous?.url || DEFAULT_URL).replace(/\/+$/, '');
        const plain = await readSecret('Password', 'ZIMAGE_PASSWORD');
        const client = new ApiClient(url);
        const res = await client.sync('PUT', '/accounts/login', {
          body: { logInByAccount: { accountName: opts.user, password: wirePassword(plain) } },
        });
        const sessionUuid = res.inventory.uuid as string;
        await saveSession({ url, accountName: opts.user, sessionUuid, createdAt: new Date().toISOString() });
        // Sessions per account are limited: end the one this one replaces.
        if (previous && previous.url === url && previous.sessionUuid !== sessionUuid) {
          await new ApiClient(url, previous.sessionUuid).sync('DELETE', `/accounts/sessions/${previous.sessionUuid}`).catch(() => {});
        }
        if (opts.json) printJson(res.inventory);
        else process.stdout.write(`logged in to ${url} as ${opts.user} (session kept in ${sessionPath()})\n`);
      }),
    );

  program
    .command('logout')
    .description('end the saved session on the server and forget it')
    .action(
      action(async () => {
        const s = await loadSession();
        if (!s) {
          process.stdout.write('not logged in\n');
          return;
        }
        try {
          await new ApiClient(s.url, s.sessionUuid).sync('DELETE', `/accounts/sessions/${s.sessionUuid}`);
        } finally {
          await removeSession();
        }
        process.stdout.write(`logged out of ${s.url}\n`);
      }),
    );
}
