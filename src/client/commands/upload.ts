import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { inspect } from '../../formats/inspect.js';
import { withFileSource } from '../../formats/file-byte-source.js';
import { action, connect, printJson, type OutputOptions } from '../context.js';
import { ApiError, Interrupted, UsageError, type ErrorCode } from '../errors.js';
import type { ApiClient } from '../http.js';
import { runJob } from '../job-runner.js';
import { progressView } from '../progress.js';
import { targetStorages } from '../resolve.js';
import { sendFile } from '../upload-transfer.js';
import { imageDetails } from '../views.js';

interface UploadOpts extends OutputOptions {
  name?: string;
  storage?: string[];
  format?: string;
  mediaType?: string;
  description?: string;
  resume?: string;
  check: boolean;
  limitRate?: number;
}

/** "2M" → 2097152; plain numbers are bytes. */
function rate(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)i?b?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('a rate is bytes per second, e.g. 500000, 512K or 10M');
  const n = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
  if (!(n >= 1)) throw new InvalidArgumentError('a rate is at least 1 byte per second');
  return Math.floor(n);
}

interface Pending {
  imageUuid: string;
  url: string;
  offset: number;
  total?: number;
  state: string;
}

/** GetUploadImageJobDetails: the upload of an image that this server still waits for, if any. */
async function pendingUpload(client: ApiClient, imageUuid: string): Promise<Pending | undefined> {
  const d = (await client.sync('GET', `/images/upload-job/details/${imageUuid}`)).existingJobDetails?.[0];
  if (!d || (d.longJobState !== 'Waiting' && d.longJobState !== 'Running')) return undefined;
  return { imageUuid, url: d.imageUploadUrl, offset: d.offset, total: d.totalSize, state: d.longJobState };
}

/** The one unfinished upload of an image with this name whose declared size matches the file (or none declared yet). */
async function findPending(client: ApiClient, name: string, size: number): Promise<Pending | undefined> {
  const images: any[] = (await client.sync('GET', '/images', { query: { q: [`name=${name}`, 'status=Downloading'] } })).inventories ?? [];
  const found: Pending[] = [];
  for (const i of images) {
    const p = await pendingUpload(client, i.uuid);
    if (p && (p.total === undefined || p.total === size)) found.push(p);
  }
  return found.length === 1 ? found[0] : undefined;
}

/** Why the server refused the bytes, as its ErrorCode when the upload job kept one. */
async function uploadFailure(client: ApiClient, imageUuid: string, status: number, text: string): Promise<ApiError> {
  const d = (await client.sync('GET', `/images/upload-job/details/${imageUuid}`).catch(() => undefined))?.existingJobDetails?.[0];
  const error = d?.error as ErrorCode | undefined;
  if (error?.code) return new ApiError(status, `${error.code}: ${error.details ?? ''}`, error);
  return new ApiError(
    status,
    `upload refused (HTTP ${status}): ${text.trim()}`,
    /refused as unsafe/.test(text) ? { code: 'SYS.1006', details: text.trim() } : undefined,
  );
}

/** Refuses an unsafe image before a byte is sent, as the server would after the last one (exit 3). */
async function checkLocally(file: string): Promise<void> {
  const result = await withFileSource(file, (source) => inspect(source));
  if (result.safety.ok) return;
  const why = result.safety.failures.map((f) => `${f.check}: ${f.message}`).join('; ');
  throw new ApiError(0, `${file} is refused as unsafe (${result.format}): ${why}`, {
    code: 'SYS.1006',
    details: `${file} is refused as unsafe (${result.format}): ${why}`,
  });
}

export function registerUpload(image: Command): void {
  image
    .command('upload')
    .description("upload a local image file (progress bar on a terminal); an interrupted upload resumes from the server's offset")
    .argument('<file>', 'image file')
    .option('--name <name>', 'image name (default: the file name)')
    .option(
      '--storage <uuid|name>',
      'backup storage (repeatable; default: the only one that can take it)',
      (v: string, p: string[] = []) => [...p, v],
    )
    .option('--format <format>', 'expected format: a different one is refused')
    .addOption(new Option('--media-type <type>', 'media type').choices(['RootVolumeTemplate', 'DataVolumeTemplate', 'ISO']))
    .option('--description <text>', 'description')
    .option(
      '--resume <imageUuid>',
      'resume the unfinished upload of this image (by default an unfinished upload of the same name and size is resumed)',
    )
    .option('--limit-rate <bytes/s>', 'send at most this many bytes per second (e.g. 10M)', rate)
    .option('--no-check', 'skip the local safety check of the file before sending it')
    .option('--json', 'print the raw inventory (for scripts)')
    .action(
      action(async (file: string, o: UploadOpts) => {
        const st = await stat(file).catch(() => undefined);
        if (!st?.isFile()) throw new UsageError(`${file} is not a readable file`);
        if (st.size === 0) throw new UsageError(`${file} is empty; there is nothing to upload`);
        if (o.check) await checkLocally(file);
        const name = o.name ?? basename(file);
        const { client } = await connect();

        let pending: Pending | undefined;
        if (o.resume) {
          pending = await pendingUpload(client, o.resume);
          if (!pending)
            throw new ApiError(
              0,
              `image ${o.resume} has no unfinished upload on this server (an upload does not survive a server restart); upload it again without --resume`,
            );
          if (pending.total !== undefined && pending.total !== st.size)
            throw new UsageError(`the upload of image ${o.resume} is ${pending.total} bytes, but ${file} is ${st.size}`);
        } else {
          pending = await findPending(client, name, st.size);
        }
        if (pending) {
          process.stderr.write(`resuming the upload of image ${pending.imageUuid} (${name}) at byte ${pending.offset} of ${st.size}\n`);
        } else {
          const backupStorageUuids = await targetStorages(client, o.storage);
          const params = {
            name,
            url: `upload://${basename(file)}`,
            backupStorageUuids,
            format: o.format,
            mediaType: o.mediaType,
            description: o.description,
          };
          const res = await runJob(client, 'POST', '/images', { params }, { title: `add ${name}` });
          pending = { imageUuid: res.inventory.uuid, url: res.inventory.url, offset: 0, state: 'Waiting' };
        }

        const view = progressView(`upload ${name}`);
        const abort = new AbortController();
        const onSigint = () => abort.abort(new Interrupted('upload interrupted'));
        process.on('SIGINT', onSigint);
        let answer;
        try {
          answer = await sendFile(pending.url, file, st.size, {
            signal: abort.signal,
            limitRate: o.limitRate,
            onBytes: (done) => view.update({ done, total: st.size }),
          });
        } catch (err) {
          view.stop();
          if (err instanceof Interrupted) {
            process.stderr.write(`\nupload interrupted; resume with: zimage image upload ${file} --resume ${pending.imageUuid}\n`);
          }
          throw err;
        } finally {
          process.off('SIGINT', onSigint);
        }
        view.stop();
        if (answer.status !== 200 || answer.state !== 'Succeeded')
          throw await uploadFailure(client, pending.imageUuid, answer.status, answer.text);
        const inv = (await client.sync('GET', `/images/${pending.imageUuid}`)).inventories?.[0];
        if (o.json) printJson(inv);
        else process.stdout.write(`${imageDetails(inv)}\n`);
      }),
    );
}
