import type { Command } from 'commander';
import { action, connect, printJson, type OutputOptions } from '../context.js';
import { describeError } from '../errors.js';
import { bytes } from '../format.js';
import { followJob } from '../job-runner.js';
import { interactiveOutput } from '../progress.js';
import { fields } from '../format.js';

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('jobs of async calls: show (progress, result) and cancel');

  job
    .command('show')
    .description("a job's state and progress, and its result or error once it ended")
    .argument('<jobUuid>', 'the job uuid (32 hex chars)')
    .option('--wait', 'follow the job to its end (progress bar on a terminal)')
    .option('--json', 'print the progress and the result as JSON')
    .action(
      action(async (uuid: string, o: OutputOptions & { wait?: boolean }) => {
        const { client } = await connect();
        if (o.wait) {
          const result = await followJob(client, uuid, { bar: !o.json && interactiveOutput() });
          if (o.json) printJson(result);
          else process.stdout.write(`job ${uuid} succeeded\n`);
          return;
        }
        const p = await client.progress(uuid);
        const s = await client.poll(client.jobLocation(uuid)).catch((err: Error) => ({ state: 'unknown' as const, message: err.message }));
        if (o.json) {
          printJson({
            uuid,
            progress: p ?? null,
            ...(s.state === 'done' ? { result: s.body } : s.state === 'failed' ? { error: s.error } : {}),
          });
          return;
        }
        const state =
          p?.state ?? (s.state === 'done' ? 'Succeeded' : s.state === 'failed' ? 'Failed' : s.state === 'running' ? 'Running' : 'unknown');
        process.stdout.write(
          `${fields([
            ['job', uuid],
            ['state', state],
            [
              'progress',
              p
                ? `${p.percent}%${p.bytesTotal ? ` (${bytes(p.bytesDone)} of ${bytes(p.bytesTotal)}, ${bytes(p.bytesPerSecond)}/s)` : ''}`
                : undefined,
            ],
            ['error', s.state === 'failed' ? describeError(s.error) : undefined],
            ['note', s.state === 'unknown' ? s.message : undefined],
          ])}\n`,
        );
      }),
    );

  job
    .command('cancel')
    .description('CancelLongJob: the job ends with SYS.1017')
    .argument('<jobUuid>', 'the job uuid (32 hex chars)')
    .action(
      action(async (uuid: string) => {
        const { client } = await connect();
        await client.cancel(uuid);
        process.stdout.write(`job ${uuid} cancelled\n`);
      }),
    );
}
