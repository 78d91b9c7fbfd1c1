import type { Command } from 'commander';
import { registerImageCommands } from './image.js';
import { registerJobCommands } from './job.js';
import { registerNodeCommands } from './node.js';
import { registerSessionCommands } from './session.js';
import { registerStorageCommands } from './storage.js';

/** The client commands: login/logout, image, storage, job, node — all through the REST API. */
export function registerClientCommands(program: Command): void {
  registerSessionCommands(program);
  registerImageCommands(program);
  registerStorageCommands(program);
  registerJobCommands(program);
  registerNodeCommands(program);
}
