/**
 * The `zimage` client CLI on a real terminal (tmux): the progress bar's text changes as bytes move, Ctrl-C
 * asks whether to cancel the job, an interrupted upload resumes, the password prompt does not echo.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, startCliWorld, type CliWorld } from './helpers/cli.js';
import { openTerminal, type Terminal } from './helpers/tmux.js';
import { execFileP, opensslDigest } from './helpers/zimage.js';

let w: CliWorld;
let slowUrl: string;
const terminals: Terminal[] = [];
const BAR = /(\d+)% \| ([\d.]+ (?:B|KiB|MiB)) \/ ([\d.]+ MiB) \| ([\d.]+ (?:B|KiB|MiB))\/s \| ETA (\S+)/;

const zimage = async (...args: string[]) => {
  const t = await openTerminal([process.execPath, CLI, ...args], { XDG_CONFIG_HOME: w.config });
  terminals.push(t);
  return t;
};

/** Distinct bar lines seen while `until` is false (or `ms` passes). */
async function watchBar(
  t: Terminal,
  title: string,
  until: (distinct: number) => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<RegExpExecArray[]> {
  const seen = new Map<string, RegExpExecArray>();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !(await until(seen.size))) {
    const line = (await t.screen()).split('\n').find((l) => l.startsWith(`${title} `));
    const m = line ? BAR.exec(line) : null;
    if (m) seen.set(m[2]!, m);
    await new Promise((r) => setTimeout(r, 150));
  }
  return [...seen.values()];
}

before(async () => {
  w = await startCliWorld();
  const file = join(w.work, 'slow.raw');
  await execFileP('openssl', ['rand', '-out', file, String(12 * 1024 * 1024)]);
  w.http.addFile('slow.raw', { path: file });
  slowUrl = w.http.url('/slow/slow.raw?bps=1500000');
  await w.server.client.login();
  await mkdir(join(w.work, 'store'));
  await w.server.client.addLocalStorage(join(w.work, 'store'), 'tty-store');
});
after(async () => {
  for (const t of terminals) await t.close();
  await w?.close();
});

test('login on a terminal prompts for the password without echo', async () => {
  const t = await zimage('login', '--url', w.server.url);
  await t.waitForText(/Password:/);
  await t.keys('password');
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(await t.screen(), /password/);
  await t.keys('Enter');
  assert.equal(await t.waitForExit(), 0, await t.screen());
  assert.match(await t.screen(), /logged in to http:\/\/127\.0\.0\.1:\d+ as admin/);
});

test('image add shows a live progress bar whose percent, bytes, rate and ETA move as bytes arrive', async () => {
  const t = await zimage('image', 'add', 'tty-add', slowUrl);
  const seen = await watchBar(t, 'add tty-add', async () => (await t.exitStatus()) !== undefined, 30_000);
  assert.equal(await t.waitForExit(), 0, await t.screen());
  assert.ok(seen.length >= 2, `the bar should change while bytes move; saw ${seen.map((m) => m[0]).join(' / ')}`);
  const percents = seen.map((m) => Number(m[1]));
  assert.ok(
    percents.some((p) => p > 0 && p < 100),
    `a percentage between 0 and 100: ${percents.join(',')}`,
  );
  assert.ok(
    seen.every((m) => m[3] === '12.0 MiB'),
    'the total is the source size',
  );
  assert.ok(
    seen.some((m) => /^[\d.]+ MiB$/.test(m[4]!) && m[5] !== '--'),
    'a rate and an ETA once bytes move',
  );
  const screen = await t.screen();
  assert.match(screen, /add tty-add .*100% \| 12\.0 MiB \/ 12\.0 MiB/);
  assert.match(screen, /status: +Ready/);
});

test('Ctrl-C asks whether to cancel; yes cancels the job (SYS.1017) and exits 130', async () => {
  const t = await zimage('image', 'add', 'tty-cancel', slowUrl);
  await t.waitForText(/add tty-cancel .*\d+%/);
  await t.keys('C-c');
  const prompt = await t.waitForText(/Cancel job [0-9a-f]{32} on the server\?/);
  const job = /Cancel job ([0-9a-f]{32})/.exec(prompt)![1]!;
  await t.keys('y', 'Enter');
  assert.equal(await t.waitForExit(), 130, await t.screen());
  assert.match(await t.screen(), new RegExp(`job ${job} cancelled \\(SYS\\.1017\\)`));
  const res = await w.server.client.poll(`${w.server.url}/zstack/v1/api-jobs/${job}`);
  assert.equal(res.status, 503);
  assert.equal(res.body.error.code, 'SYS.1017');
});

test('Ctrl-C, then no: the job keeps running and can be followed with job show --wait', async () => {
  const t = await zimage('image', 'add', 'tty-keep', slowUrl);
  await t.waitForText(/add tty-keep .*\d+%/);
  await t.keys('C-c');
  const prompt = await t.waitForText(/Cancel job [0-9a-f]{32} on the server\?/);
  const job = /Cancel job ([0-9a-f]{32})/.exec(prompt)![1]!;
  await t.keys('n', 'Enter');
  assert.equal(await t.waitForExit(), 130);
  assert.match(await t.screen(), /keeps running on the server; follow it with: zimage job show/);
  const follow = await zimage('job', 'show', job, '--wait');
  const seen = await watchBar(follow, `job ${job.slice(0, 8)}`, async () => (await follow.exitStatus()) !== undefined, 30_000);
  assert.equal(await follow.waitForExit(), 0, await follow.screen());
  assert.ok(seen.length >= 1, 'job show --wait draws the bar');
  assert.match(await follow.screen(), new RegExp(`job ${job} succeeded`));
});

test('upload shows a bar; Ctrl-C stops it with the resume command; the next run resumes (MD5 = openssl)', async () => {
  const file = join(w.work, 'up.raw');
  await execFileP('openssl', ['rand', '-out', file, String(16 * 1024 * 1024)]);
  const t = await zimage('image', 'upload', file, '--limit-rate', '3M');
  // Until the bar has shown two readings (the upload takes about 5 s at 3 MB/s), however long the CLI took to start.
  await t.waitForText(/upload up\.raw .*\d+%/);
  const seen = await watchBar(t, 'upload up.raw', (distinct) => distinct >= 2, 15_000);
  assert.ok(seen.length >= 2, `the upload bar should move: ${seen.map((m) => m[0]).join(' / ')}`);
  await t.keys('C-c');
  assert.equal(await t.waitForExit(), 130, await t.screen());
  const screen = (await t.screen()).replace(/\n/g, '');
  const m = /resume with: zimage image upload \S+ --resume ([0-9a-f]{32})/.exec(screen);
  assert.ok(m, screen);

  const again = await zimage('image', 'upload', file, '--resume', m[1]!);
  assert.equal(await again.waitForExit(20_000), 0, await again.screen());
  const out = await again.screen();
  assert.match(out, new RegExp(`resuming the upload of image ${m[1]} \\(up\\.raw\\) at byte [1-9]\\d* of 16777216`));
  assert.match(out, /upload up\.raw .*100% \| 16\.0 MiB \/ 16\.0 MiB/);
  assert.match(out, new RegExp(`md5Sum: +${await opensslDigest(file, 'md5')}`));
});
