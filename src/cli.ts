#!/usr/bin/env node
import { stat } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from './config.js';
import { lockDataDir } from './db/process-lock.js';
import { prepareDataDir } from './lib/data-dir.js';
import { VERSION } from './version.js';

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
};

const program = new Command('zimage')
  .description("Image service speaking ZStack's image REST API")
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();
// Usage errors exit 2 (API errors 1, unsafe image 3, interrupted 130); help and --version exit 0.
program.exitOverride((err) => {
  process.exit(err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2);
});

program
  .command('serve')
  .description('start the API server (embedded default: SQLite and local directories under --data-dir)')
  .option('--host <address>', 'listen address [env ZIMAGE_HOST] (default 127.0.0.1)')
  .option('--port <port>', 'listen port [env ZIMAGE_PORT] (default 8080)', port)
  .option('--data-dir <dir>', 'data directory [env ZIMAGE_DATA_DIR] (default ./data)')
  .option('--db <url>', 'database: sqlite:<path> or postgres://… [env ZIMAGE_DB]')
  .option('--config <file>', 'JSON config file [env ZIMAGE_CONFIG]')
  .action(async (opts: { host?: string; port?: number; dataDir?: string; db?: string; config?: string }) => {
    let config;
    try {
      config = loadConfig(opts);
    } catch (err) {
      console.error(`zimage: ${(err as Error).message}`);
      process.exit(2);
    }
    try {
      // Before loading the server's modules, so a bad or busy --data-dir fails at once.
      prepareDataDir(config.dataDir);
      const dataDirLock = lockDataDir(config.dataDir);
      const { startApp } = await import('./app.js');
      const app = await startApp(config, undefined, { dataDirLock });
      app.server.log.info(
        { url: app.url, version: VERSION, db: config.db.replace(/\/\/[^@/]*@/, '//***@'), dataDir: config.dataDir },
        'zimage is serving',
      );
      const stop = async (signal: string) => {
        app.server.log.info({ signal }, 'stopping');
        await app.stop();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    } catch (err) {
      console.error(`zimage: cannot start: ${(err as Error).message}`);
      process.exit(1);
    }
  });

program
  .command('inspect')
  .description("detect an image file's format, virtual size and safety, as the server would record them")
  .argument('<file>', 'image file')
  .option('--json', 'print JSON shaped like `qemu-img info --output=json`')
  .action(async (file: string, opts: { json?: boolean }) => {
    try {
      const [{ inspect }, { withFileSource }, { toQemuImgInfo }] = await Promise.all([
        import('./formats/inspect.js'),
        import('./formats/file-byte-source.js'),
        import('./formats/qemu-info.js'),
      ]);
      const st = await stat(file);
      const result = await withFileSource(file, (source) => inspect(source));
      const actualSize = st.blocks * 512;
      if (opts.json) {
        console.log(JSON.stringify(toQemuImgInfo(result, file, actualSize), null, 4));
      } else {
        console.log(`image: ${file}`);
        console.log(`file format: ${result.format}`);
        console.log(`virtual size: ${result.virtualSize} bytes`);
        console.log(`disk size: ${actualSize} bytes`);
        console.log(`safe: ${result.safety.ok ? 'yes' : 'NO'}`);
        for (const f of result.safety.failures) console.log(`  refused by ${f.check}: ${f.message}`);
      }
      // 0 safe, 3 unsafe: scripts can gate an upload on it.
      process.exitCode = result.safety.ok ? 0 : 3;
    } catch (err) {
      console.error(`zimage inspect: ${(err as Error).message}`);
      process.exitCode = 1;
    }
  });

// The client commands load many modules: `serve` does without them, so a bad --data-dir is reported sooner.
if (process.argv[2] !== 'serve') (await import('./client/commands/index.js')).registerClientCommands(program);

await program.parseAsync();
