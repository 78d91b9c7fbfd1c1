import { Option, type Command } from 'commander';
import { action, connect, printJson, type OutputOptions } from '../context.js';
import { runJob } from '../job-runner.js';
import { copyStorage, resolveImage, targetStorages } from '../resolve.js';
import { imageDetails, imageTable } from '../views.js';
import { registerUpload } from './upload.js';

interface JobOpts extends OutputOptions {
  detach?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** --json and --detach, on every command that runs a job. */
export const jobOptions = (c: Command): Command =>
  c
    .option('--json', 'print the raw inventory (for scripts)')
    .option('--detach', 'on Ctrl-C / SIGINT, leave the job running on the server instead of cancelling it');

const storagesOption = (c: Command, what: string): Command => c.option('--storage <uuid|name>', `${what}; repeatable`, collect);

/** Connects, then finds the image and the backup storage of the copy a command acts on (--storage, or the first Ready copy). */
async function imageCopy(ref: string, storage: string | undefined) {
  const { client } = await connect();
  const inv = await resolveImage(client, ref);
  return { client, inv, backupStorageUuid: await copyStorage(inv, storage, client) };
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('images: add, upload, list, show, sync, hash, export, delete, recover, expunge');

  jobOptions(
    storagesOption(
      image
        .command('add')
        .description('add an image from an http(s):// or file:/// URL (progress bar on a terminal)')
        .argument('<name>', 'image name')
        .argument('<url>', 'where the server reads the bytes from'),
      'backup storage to put it on (default: the only one that can take it)',
    )
      .option('--format <format>', 'expected format (qcow2, raw, vmdk, …): a different one is refused')
      .addOption(new Option('--media-type <type>', 'media type').choices(['RootVolumeTemplate', 'DataVolumeTemplate', 'ISO']))
      .option('--platform <platform>', 'Linux, Windows, Other, …')
      .option('--architecture <arch>', 'x86_64, aarch64, …')
      .option('--guest-os-type <type>', 'guest OS type')
      .option('--description <text>', 'description')
      .option('--sha256 <hex>', 'expected SHA-256: a mismatch fails the add')
      .option('--md5 <hex>', 'expected MD5: a mismatch fails the add'),
  ).action(
    action(
      async (
        name: string,
        url: string,
        o: JobOpts & {
          storage?: string[];
          format?: string;
          mediaType?: string;
          platform?: string;
          architecture?: string;
          guestOsType?: string;
          description?: string;
          sha256?: string;
          md5?: string;
        },
      ) => {
        const { client } = await connect();
        const backupStorageUuids = await targetStorages(client, o.storage);
        const systemTags = [...(o.sha256 ? [`checksum::sha256::${o.sha256}`] : []), ...(o.md5 ? [`checksum::md5::${o.md5}`] : [])];
        const params = {
          name,
          url,
          backupStorageUuids,
          format: o.format,
          mediaType: o.mediaType,
          platform: o.platform,
          architecture: o.architecture,
          guestOsType: o.guestOsType,
          description: o.description,
        };
        const res = await runJob(
          client,
          'POST',
          '/images',
          { params, ...(systemTags.length ? { systemTags } : {}) },
          { title: `add ${name}`, bar: true, detach: o.detach },
        );
        if (o.json) printJson(res.inventory);
        else process.stdout.write(`${imageDetails(res.inventory)}\n`);
      },
    ),
  );

  registerUpload(image);

  image
    .command('list')
    .description('list images (an aligned table; --json for the inventories)')
    .option('--q <condition>', 'a ZStack query condition, e.g. status=Ready or name~=cent% (repeatable)', collect)
    .option('--limit <n>', 'at most this many', (v) => Number(v))
    .option('--json', 'print the raw inventories (for scripts)')
    .action(
      action(async (o: OutputOptions & { q?: string[]; limit?: number }) => {
        const { client } = await connect();
        const body = await client.sync('GET', '/images', { query: { q: o.q, limit: o.limit, sort: '+createDate' } });
        if (o.json) printJson(body.inventories);
        else process.stdout.write(`${imageTable(body.inventories ?? [])}\n`);
      }),
    );

  image
    .command('show')
    .description('one image with its copies and every digest recorded')
    .argument('<image>', 'uuid or name')
    .option('--json', 'print the raw inventory (for scripts)')
    .action(
      action(async (ref: string, o: OutputOptions) => {
        const { client } = await connect();
        const inv = await resolveImage(client, ref);
        if (o.json) return printJson(inv);
        const digests = (await client.sync('GET', `/images/${inv.uuid}/digests`)).inventories ?? [];
        process.stdout.write(`${imageDetails(inv, digests)}\n`);
      }),
    );

  jobOptions(
    image
      .command('sync')
      .description('SyncImageSize: measure the virtual and allocated size of every copy')
      .argument('<image>', 'uuid or name'),
  ).action(
    action(async (ref: string, o: JobOpts) => {
      const { client } = await connect();
      const inv = await resolveImage(client, ref);
      const res = await runJob(
        client,
        'PUT',
        `/images/${inv.uuid}/actions`,
        { syncImageSize: {} },
        { title: `sync ${inv.name}`, bar: true, detach: o.detach },
      );
      if (o.json) printJson(res.inventory);
      else process.stdout.write(`${imageDetails(res.inventory)}\n`);
    }),
  );

  jobOptions(
    image
      .command('hash')
      .description('CalculateImageHash: read every byte of a copy and digest it (progress bar on a terminal)')
      .argument('<image>', 'uuid or name')
      .option('--storage <uuid|name>', "the copy's backup storage (default: the image's first Ready copy)")
      .option('--algorithm <alg>', 'MD5, SHA1, SHA256, SHA512, …', 'MD5'),
  ).action(
    action(async (ref: string, o: JobOpts & { storage?: string; algorithm: string }) => {
      const { client, inv, backupStorageUuid } = await imageCopy(ref, o.storage);
      const res = await runJob(
        client,
        'PUT',
        `/images/${inv.uuid}/actions`,
        { calculateImageHash: { backupStorageUuid, algorithm: o.algorithm } },
        { title: `hash ${inv.name}`, bar: true, detach: o.detach },
      );
      if (o.json) printJson(res.inventory);
      else process.stdout.write(`${o.algorithm.toUpperCase()} ${res.inventory.md5Sum}  ${inv.name}\n`);
    }),
  );

  jobOptions(
    image
      .command('export')
      .description('ExportImageFromBackupStorage: publish a copy at a URL served by zimage (prints the URL and MD5)')
      .argument('<image>', 'uuid or name')
      .option('--storage <uuid|name>', "the copy's backup storage (default: the image's first Ready copy)"),
  ).action(
    action(async (ref: string, o: JobOpts & { storage?: string }) => {
      const { client, inv, backupStorageUuid } = await imageCopy(ref, o.storage);
      const res = await runJob(
        client,
        'PUT',
        `/backup-storage/${backupStorageUuid}/actions`,
        { exportImageFromBackupStorage: { imageUuid: inv.uuid } },
        { title: `export ${inv.name}`, bar: true, detach: o.detach },
      );
      if (o.json) printJson(res);
      else process.stdout.write(`url: ${res.imageUrl}\nmd5: ${res.exportMd5Sum}\n`);
    }),
  );

  const lifecycle = (
    name: string,
    description: string,
    call: (uuid: string, storages: string[] | undefined) => [string, string, unknown, Record<string, string[]>?],
  ) =>
    jobOptions(
      storagesOption(
        image.command(name).description(description).argument('<image>', 'uuid or name'),
        'only the copy on this backup storage',
      ),
    ).action(
      action(async (ref: string, o: JobOpts & { storage?: string[] }) => {
        const { client } = await connect();
        const inv = await resolveImage(client, ref);
        const storages = o.storage?.length ? await targetStorages(client, o.storage) : undefined;
        const [method, path, body, query] = call(inv.uuid, storages);
        const res = await runJob(client, method, path, body, { title: `${name} ${inv.name}`, detach: o.detach }, query);
        if (o.json) printJson(res.inventory ?? res);
        else process.stdout.write(res.inventory ? `${imageDetails(res.inventory)}\n` : `${name}: done (${inv.uuid} ${inv.name})\n`);
      }),
    );
  lifecycle('delete', "DeleteImage, under the server's deletion policy (Delay: recoverable until expunged)", (uuid, s) => [
    'DELETE',
    `/images/${uuid}`,
    undefined,
    s ? { backupStorageUuids: s } : undefined,
  ]);
  lifecycle('recover', 'RecoverImage: bring Deleted copies back to Ready', (uuid, s) => [
    'PUT',
    `/images/${uuid}/actions`,
    { recoverImage: s ? { backupStorageUuids: s } : {} },
  ]);
  lifecycle('expunge', 'ExpungeImage: remove Deleted copies for good', (uuid, s) => [
    'PUT',
    `/images/${uuid}/actions`,
    { expungeImage: s ? { backupStorageUuids: s } : {} },
  ]);
}
