import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { action, connect, printJson, type OutputOptions } from '../context.js';
import { runJob } from '../job-runner.js';
import { readSecret } from '../prompts.js';
import { resolveStorage } from '../resolve.js';
import { storageDetails, storageTable } from '../views.js';
import { jobOptions } from './image.js';

interface JobOpts extends OutputOptions {
  detach?: boolean;
  description?: string;
}

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a port is an integer from 1 to 65535');
  return n;
};

/** Adds a storage of one type and prints it. */
async function add(segment: string, params: Record<string, unknown>, o: JobOpts): Promise<void> {
  const { client } = await connect();
  const res = await runJob(
    client,
    'POST',
    `/backup-storage/${segment}`,
    { params },
    { title: `add storage ${String(params.name)}`, detach: o.detach },
  );
  if (o.json) printJson(res.inventory);
  else process.stdout.write(`${storageDetails(res.inventory)}\n`);
}

export function registerStorageCommands(program: Command): void {
  const storage = program.command('storage').description('backup storage: add (local, sftp, ceph), list, show, reconnect, delete');
  const addCmd = storage.command('add').description('add backup storage of one type');

  jobOptions(
    addCmd
      .command('local')
      .description('a directory on the zimage host')
      .argument('<name>', 'storage name')
      .requiredOption('--url <dir>', 'absolute directory on the server host')
      .option('--description <text>', 'description'),
  ).action(action(async (name: string, o: JobOpts & { url: string }) => add('local', { name, url: o.url, description: o.description }, o)));

  jobOptions(
    addCmd
      .command('sftp')
      .description(
        'a directory on a remote Linux host over SSH (password from ZIMAGE_SSH_PASSWORD, a prompt or stdin, unless --private-key)',
      )
      .argument('<name>', 'storage name')
      .requiredOption('--hostname <host>', 'SSH host')
      .requiredOption('--username <user>', 'SSH user')
      .requiredOption('--url <dir>', 'absolute directory on that host')
      .option('--ssh-port <port>', 'SSH port', port, 22)
      .option('--private-key <file>', 'PEM private key file (instead of a password)')
      .option('--host-key-fingerprint <fp>', 'pin the host key (SHA256:…) instead of trusting it on first connect')
      .option('--description <text>', 'description'),
  ).action(
    action(
      async (
        name: string,
        o: JobOpts & { hostname: string; username: string; url: string; sshPort: number; privateKey?: string; hostKeyFingerprint?: string },
      ) => {
        const secret = o.privateKey
          ? { privateKey: await readFile(o.privateKey, 'utf8') }
          : { password: await readSecret('SSH password', 'ZIMAGE_SSH_PASSWORD') };
        await add(
          'sftp',
          {
            name,
            hostname: o.hostname,
            username: o.username,
            url: o.url,
            sshPort: o.sshPort,
            hostKeyFingerprint: o.hostKeyFingerprint,
            description: o.description,
            ...secret,
          },
          o,
        );
      },
    ),
  );

  jobOptions(
    addCmd
      .command('ceph')
      .description('a Ceph RBD pool (cephx key from ZIMAGE_CEPH_KEY, or --ceph-conf and --keyring paths on the server)')
      .argument('<name>', 'storage name')
      .requiredOption('--mon-url <host[:port]>', 'a monitor (repeatable)', (v: string, p: string[] = []) => [...p, v])
      .requiredOption('--pool <pool>', 'pool name')
      .option('--ceph-user <user>', 'cephx user (default admin)')
      .option('--ceph-conf <path>', 'ceph.conf path on the server host')
      .option('--keyring <path>', 'keyring path on the server host')
      .option('--description <text>', 'description'),
  ).action(
    action(
      async (name: string, o: JobOpts & { monUrl: string[]; pool: string; cephUser?: string; cephConf?: string; keyring?: string }) => {
        const cephKey = process.env.ZIMAGE_CEPH_KEY || undefined;
        await add(
          'ceph',
          {
            name,
            monUrls: o.monUrl,
            poolName: o.pool,
            cephUser: o.cephUser,
            cephKey,
            cephConf: o.cephConf,
            keyring: o.keyring,
            description: o.description,
          },
          o,
        );
      },
    ),
  );

  storage
    .command('list')
    .description('list backup storage (an aligned table; --json for the inventories)')
    .option('--json', 'print the raw inventories (for scripts)')
    .action(
      action(async (o: OutputOptions) => {
        const { client } = await connect();
        const body = await client.sync('GET', '/backup-storage', { query: { sort: '+createDate' } });
        if (o.json) printJson(body.inventories);
        else process.stdout.write(`${storageTable(body.inventories ?? [])}\n`);
      }),
    );

  storage
    .command('show')
    .description('one backup storage')
    .argument('<storage>', 'uuid or name')
    .option('--json', 'print the raw inventory (for scripts)')
    .action(
      action(async (ref: string, o: OutputOptions) => {
        const { client } = await connect();
        const inv = await resolveStorage(client, ref);
        if (o.json) printJson(inv);
        else process.stdout.write(`${storageDetails(inv)}\n`);
      }),
    );

  jobOptions(
    storage
      .command('reconnect')
      .description('ReconnectBackupStorage: connect again and refresh the capacity')
      .argument('<storage>', 'uuid or name'),
  ).action(
    action(async (ref: string, o: JobOpts) => {
      const { client } = await connect();
      const inv = await resolveStorage(client, ref);
      const res = await runJob(
        client,
        'PUT',
        `/backup-storage/${inv.uuid}/actions`,
        { reconnectBackupStorage: {} },
        { title: `reconnect ${inv.name}`, detach: o.detach },
      );
      if (o.json) printJson(res.inventory);
      else process.stdout.write(`${storageDetails(res.inventory)}\n`);
    }),
  );

  jobOptions(storage.command('delete').description('DeleteBackupStorage').argument('<storage>', 'uuid or name')).action(
    action(async (ref: string, o: JobOpts) => {
      const { client } = await connect();
      const inv = await resolveStorage(client, ref);
      const res = await runJob(client, 'DELETE', `/backup-storage/${inv.uuid}`, undefined, {
        title: `delete ${inv.name}`,
        detach: o.detach,
      });
      if (o.json) printJson(res);
      else process.stdout.write(`deleted backup storage ${inv.uuid} (${inv.name})\n`);
    }),
  );
}
