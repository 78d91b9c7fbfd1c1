/**
 * Remote commands are built from argument lists only. Every argument is put in POSIX single quotes, where
 * nothing is special except the single quote itself, which is written as '\'' (end quote, escaped quote,
 * start quote). The result is one word for any POSIX shell, whatever the argument holds: spaces, quotes,
 * `$()`, backquotes, `;`, `|`, globs, newlines, a leading `-` (commands take `--` where a path follows).
 */

/** One argument as a single-quoted shell word. NUL cannot be passed through a command line and is refused. */
export function shellQuote(arg: string): string {
  if (typeof arg !== 'string') throw new TypeError(`shell argument must be a string, got ${typeof arg}`);
  if (arg.includes('\0')) throw new RangeError('a shell argument cannot contain a NUL byte');
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line for the remote login shell, from an argument list (every word quoted). */
export function shellCommand(args: readonly string[]): string {
  if (args.length === 0) throw new RangeError('empty command');
  return args.map(shellQuote).join(' ');
}

/**
 * A constant POSIX sh script run as `sh -c <script> zimage <args…>`: the script text never contains data;
 * the data arrive as "$1", "$2", … and are used quoted inside it.
 */
export function scriptCommand(script: string, args: readonly string[]): string {
  return shellCommand(['sh', '-c', script, 'zimage', ...args]);
}
