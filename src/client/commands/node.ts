import type { Command } from 'commander';
import { action, connect, printJson, type OutputOptions } from '../context.js';
import { table } from '../format.js';

/** `zimage node list`: the nodes sharing the server's database (GetZImageNodes, a zimage extension). */
export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('zimage nodes sharing one database: list');
  node
    .command('list')
    .description('every node with its state, last heartbeat, unfinished jobs and whether it runs the periodic work')
    .option('--json', 'print the nodes as JSON')
    .action(
      action(async (o: OutputOptions) => {
        const { client } = await connect();
        const nodes: any[] = (await client.sync('GET', '/zimage/nodes')).inventories ?? [];
        if (o.json) return printJson(nodes);
        process.stdout.write(
          `${table(
            ['ID', 'STATE', 'ADDRESS', 'LAST HEARTBEAT', 'JOBS', 'PERIODIC', 'VERSION'],
            nodes.map((n) => [
              `${n.id}${n.self ? ' (this)' : ''}`,
              n.state,
              n.address,
              n.lastHeartbeat,
              (n.runningJobs ?? []).map((j: any) => `${j.apiName} ${j.uuid}`).join('\n') || '-',
              n.periodicWork ? 'yes' : '',
              n.version,
            ]),
          )}\n`,
        );
      }),
    );
}
